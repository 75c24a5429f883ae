// The plaintext probe listener (--health-listen): a second gRPC server that serves grpc.health.v1 and nothing else,
// sharing the API listener's health status, so Kubernetes gRPC probes (which speak no TLS) work. Transport only.
import * as grpc from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";

export interface HealthListener {
  /** HOST:PORT actually bound. */
  address: string;
  close(): Promise<void>;
}

export async function serveHealthOnly(listen: string, health: HealthImplementation): Promise<HealthListener> {
  const server = new grpc.Server();
  health.addToServer(server as unknown as Parameters<HealthImplementation["addToServer"]>[0]);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`cannot listen on --health-listen ${listen}: ${err.message}`)) : resolve(p),
    );
  });
  return {
    address: `${listen.slice(0, listen.lastIndexOf(":"))}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

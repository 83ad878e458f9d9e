/**
 * Prometheus metrics through prom-client. Each plugin instance has its own registry, so several
 * servers in one process (tests, multi-tenant apps) never collide on metric names.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly bytesReceived = new Counter({
    name: 'bigup_bytes_received_total',
    help: 'Payload bytes written from DATA messages',
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'bigup_connections',
    help: 'Open WebSocket connections',
    registers: [this.registry],
  });
  readonly uploadsActive = new Gauge({
    name: 'bigup_uploads_active',
    help: 'Uploads with a live connection',
    registers: [this.registry],
  });
  readonly uploadsCreated = new Counter({
    name: 'bigup_uploads_created_total',
    help: 'Uploads created by OPEN',
    registers: [this.registry],
  });
  readonly uploadsCompleted = new Counter({
    name: 'bigup_uploads_completed_total',
    help: 'Uploads completed',
    registers: [this.registry],
  });
  readonly uploadsFailed = new Counter({
    name: 'bigup_uploads_failed_total',
    help: 'Uploads that hit a storage error',
    registers: [this.registry],
  });
  readonly uploadsExpired = new Counter({
    name: 'bigup_uploads_expired_total',
    help: 'Uploads removed by the TTL sweeper',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'bigup_errors_total',
    help: 'ERROR messages sent, by code name',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly writeSeconds = new Histogram({
    name: 'bigup_write_seconds',
    help: 'Time from the start of a chunk write to its journal record (ack latency on the server)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly backendSeconds = new Histogram({
    name: 'bigup_backend_seconds',
    help: 'Latency of calls to the object store and the shared registry (object-store mode)',
    labelNames: ['backend', 'operation'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly backendErrors = new Counter({
    name: 'bigup_backend_errors_total',
    help: 'Failed calls to the object store and the shared registry, by operation and error',
    labelNames: ['backend', 'operation', 'error'] as const,
    registers: [this.registry],
  });

  /** The store's BackendObserver: one call to a backend ended. */
  observeBackend(backend: string, operation: string, seconds: number, error?: string): void {
    this.backendSeconds.observe({ backend, operation }, seconds);
    if (error !== undefined) this.backendErrors.inc({ backend, operation, error });
  }
}

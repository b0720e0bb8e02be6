// Drives a live scheduler with the types openapi-typescript generated from its schema (./schema.d.ts):
// tsc --strict must accept every call, then node runs it. BASE_URL, API_KEY and EXECUTOR_ID come from the
// environment; it prints one JSON object of what it saw.
import type { paths } from "./schema";

type Json<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: { [K in S]: { content: { "application/json": infer B } } } } ? B : never;
type Body<P extends keyof paths, M extends keyof paths[P]> =
  paths[P][M] extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

declare const process: { env: Record<string, string | undefined> };
const base = process.env.BASE_URL ?? "";
const headers = { Authorization: `Bearer ${process.env.API_KEY}`, "Content-Type": "application/json" };

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const answer = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${await answer.text()}`);
  return (await answer.json()) as T;
}

async function main(): Promise<void> {
  const create: Body<"/api/v1/tasks", "post"> = { name: "echo", cron_expression: "0 0 0 1 1 *" };
  const created = await call<Json<"/api/v1/tasks", "post", 201>>("POST", "/api/v1/tasks", create);
  const id: string = created.data.id;
  const partial: Body<"/api/v1/tasks/{id}", "put"> = { timeout_seconds: 45 };  // no name: a partial update
  await call<Json<"/api/v1/tasks/{id}", "put", 200>>("PUT", `/api/v1/tasks/${id}`, partial);
  const assign: Body<"/api/v1/tasks/{id}/executors", "post"> = { executor_id: process.env.EXECUTOR_ID ?? "" };
  await call<Json<"/api/v1/tasks/{id}/executors", "post", 201>>("POST", `/api/v1/tasks/${id}/executors`, assign);
  const listed = await call<Json<"/api/v1/tasks", "get", 200>>("GET", "/api/v1/tasks?limit=5");
  const trigger: Body<"/api/v1/tasks/{id}/trigger", "post"> = { parameters: { greeting: "from TypeScript" } };
  const run = await call<Json<"/api/v1/tasks/{id}/trigger", "post", 200>>("POST", `/api/v1/tasks/${id}/trigger`, trigger);
  let detail = await call<Json<"/api/v1/executions/{id}", "get", 200>>("GET", `/api/v1/executions/${run.data.id}`);
  for (let i = 0; i < 300 && !["success", "failed", "timeout", "cancelled"].includes(detail.data.status); i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    detail = await call<Json<"/api/v1/executions/{id}", "get", 200>>("GET", `/api/v1/executions/${run.data.id}`);
  }
  const instance: string | undefined = detail.data.executor?.instance_id;
  const stats = await call<Json<"/api/v1/executions/stats", "get", 200>>("GET", `/api/v1/executions/stats?task_id=${id}`);
  const end: string = stats.data.end_time;
  console.log(JSON.stringify({ listed_page_size: listed.page_size, status: detail.data.status, result: detail.data.result,
                               executor_instance: instance, stats_total: stats.data.total, stats_end_time: end }));
}

main().catch((error) => { console.error(error); throw error; });

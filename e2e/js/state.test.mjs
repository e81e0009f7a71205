// The Dapr JS SDK (@dapr/dapr, HTTP) against a blockgate gateway, configured
// only by DAPR_HTTP_ENDPOINT and DAPR_API_TOKEN as an app would be.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DaprClient, CommunicationProtocolEnum } from "@dapr/dapr";

const client = new DaprClient({ communicationProtocol: CommunicationProtocolEnum.HTTP });
const store = "statestore";
const run = `js-${Date.now()}`;

test("the client starts: it polls the metadata API until ready", async () => {
  await client.start();
  const md = await client.metadata.get();
  assert.equal(md.id, "app1");
  assert.ok(md.components.some((c) => c.name === store && c.type === "state.postgresql"));
});

test("save, get and delete", async () => {
  const key = `${run}-order`;
  const saved = await client.state.save(store, [{ key, value: { qty: 3, item: "apple" } }]);
  assert.equal(saved.error, undefined);
  assert.deepEqual(await client.state.get(store, key), { qty: 3, item: "apple" });

  const deleted = await client.state.delete(store, key);
  assert.equal(deleted.error, undefined);
  assert.equal(await client.state.get(store, key), "");
});

test("strings and numbers round-trip as JSON", async () => {
  await client.state.save(store, [
    { key: `${run}-s`, value: "hello" },
    { key: `${run}-n`, value: 42 },
  ]);
  assert.equal(await client.state.get(store, `${run}-s`), "hello");
  assert.equal(await client.state.get(store, `${run}-n`), 42);
});

test("bulk get returns every key, missing ones without data", async () => {
  await client.state.save(store, [
    { key: `${run}-b1`, value: { n: 1 } },
    { key: `${run}-b2`, value: { n: 2 } },
  ]);
  const items = await client.state.getBulk(store, [`${run}-b1`, `${run}-b2`, `${run}-missing`]);
  const byKey = Object.fromEntries(items.map((i) => [i.key, i]));
  assert.deepEqual(byKey[`${run}-b1`].data, { n: 1 });
  assert.deepEqual(byKey[`${run}-b2`].data, { n: 2 });
  assert.equal(byKey[`${run}-missing`].data, undefined);
});

test("a transaction applies upserts and deletes together", async () => {
  await client.state.save(store, [{ key: `${run}-t0`, value: "old" }]);
  await client.state.transaction(store, [
    { operation: "upsert", request: { key: `${run}-t1`, value: { v: 1 } } },
    { operation: "upsert", request: { key: `${run}-t2`, value: { v: 2 } } },
    { operation: "delete", request: { key: `${run}-t0` } },
  ]);
  assert.deepEqual(await client.state.get(store, `${run}-t1`), { v: 1 });
  assert.deepEqual(await client.state.get(store, `${run}-t2`), { v: 2 });
  assert.equal(await client.state.get(store, `${run}-t0`), "");
});

test("a stale ETag is refused and changes nothing", async () => {
  const key = `${run}-etag`;
  await client.state.save(store, [{ key, value: { v: 1 } }]);
  const [first] = await client.state.getBulk(store, [key]);
  await client.state.save(store, [{ key, value: { v: 2 }, etag: first.etag }]);
  const stale = await client.state.save(store, [{ key, value: { v: 3 }, etag: first.etag }]);
  assert.ok(stale.error, "saving with a stale etag must fail");
  assert.deepEqual(await client.state.get(store, key), { v: 2 });
});

test("the query API filters the app's JSON values", async () => {
  await client.state.save(store, [
    { key: `${run}-q1`, value: { run, city: "Lisbon", n: 1 } },
    { key: `${run}-q2`, value: { run, city: "Porto", n: 2 } },
    { key: `${run}-q3`, value: { run, city: "Lisbon", n: 3 } },
  ]);
  const res = await client.state.query(store, {
    filter: { AND: [{ EQ: { run } }, { EQ: { city: "Lisbon" } }] },
    sort: [{ key: "n", order: "DESC" }],
  });
  assert.deepEqual(res.results.map((r) => r.key), [`${run}-q3`, `${run}-q1`]);
});

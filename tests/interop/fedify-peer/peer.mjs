// A Fedify-based ActivityPub peer for indiebridge's interoperability tests.
//
// It hosts one local actor on 127.0.0.1, signs everything it sends with
// Fedify's own machinery (HTTP Message Signatures / draft-cavage fallback,
// Linked Data Signatures, FEP-8b32 Object Integrity Proofs) and verifies
// everything it receives with Fedify's own checks.  Tests drive it through a
// small JSON control API under /_control/ on the same port (see README.md).
//
// Usage: node peer.mjs --port 8200 [--host 127.0.0.1] [--user alice]
//        [--first-knock rfc9421|draft-cavage-http-signatures-12]
//        [--follow-policy accept|reject|manual] [--log-level info|debug|...]
//        [--parent-pid PID]   (exit when that process is gone)

import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";

import {
  createFederation,
  generateCryptoKeyPair,
  getDocumentLoader,
  MemoryKvStore,
  verifyJsonLd,
  verifyObject,
} from "@fedify/fedify";
import {
  Accept,
  Activity,
  Announce,
  Create,
  Delete,
  Emoji,
  Endpoints,
  Follow,
  getTypeId,
  Image,
  Like,
  Mention,
  Note,
  Object as APObject,
  Person,
  PUBLIC_COLLECTION,
  QuoteAuthorization,
  Reject,
  Tombstone,
  traverseCollection,
  Undo,
  Update,
} from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { configure, getConsoleSink, getLogger } from "@logtape/logtape";

// ---------------------------------------------------------------------------
// Configuration

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: process.env.FEDIFY_PEER_HOST ?? "127.0.0.1" },
    port: { type: "string", default: process.env.FEDIFY_PEER_PORT ?? "8200" },
    user: { type: "string", default: process.env.FEDIFY_PEER_USER ?? "alice" },
    "first-knock": {
      type: "string",
      default: process.env.FEDIFY_PEER_FIRST_KNOCK ?? "rfc9421",
    },
    "follow-policy": {
      type: "string",
      default: process.env.FEDIFY_PEER_FOLLOW_POLICY ?? "accept",
    },
    "log-level": { type: "string", default: process.env.FEDIFY_PEER_LOG_LEVEL ?? "info" },
    "parent-pid": { type: "string", default: process.env.FEDIFY_PEER_PARENT_PID ?? "" },
  },
});

const HOST = args.host;
const PORT = Number.parseInt(args.port, 10);
const USER = args.user;
const ORIGIN = `http://${HOST.includes(":") ? `[${HOST}]` : HOST}:${PORT}`;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const MAX_RECORDS = 2000;

await configure({
  contextLocalStorage: new AsyncLocalStorage(),
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["logtape", "meta"], sinks: ["console"], lowestLevel: "warning" },
    { category: "fedify", sinks: ["console"], lowestLevel: args["log-level"] },
    // Signature checks explain their failures at debug level only.
    { category: ["fedify", "sig"], sinks: ["console"], lowestLevel: "debug" },
    { category: "peer", sinks: ["console"], lowestLevel: "debug" },
  ],
});
const log = getLogger("peer");

// ---------------------------------------------------------------------------
// https -> http for loopback hosts.  WebFinger lookups of acct: handles are
// always made over https by Fedify; test servers on this machine speak http.

function toLoopbackHttp(url) {
  if (url.protocol === "https:" && LOOPBACK.has(url.hostname)) {
    const mapped = new URL(url.href);
    mapped.protocol = "http:";
    return mapped;
  }
  return null;
}

const originalFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  if (input instanceof Request) {
    const mapped = toLoopbackHttp(new URL(input.url));
    if (mapped != null) {
      log.debug("fetch {from} -> {to}", { from: input.url, to: mapped.href });
      input = new Request(mapped, input);
    }
  } else {
    const mapped = toLoopbackHttp(new URL(input instanceof URL ? input.href : String(input)));
    if (mapped != null) {
      log.debug("fetch {from} -> {to}", { from: String(input), to: mapped.href });
      input = mapped;
    }
  }
  return originalFetch(input, init);
};

// ---------------------------------------------------------------------------
// State

const state = {
  followPolicy: args["follow-policy"],
  aliases: [], // alsoKnownAs of the local actor (POST /_control/config {aliases}), for Move tests
  received: [], // activities that reached an inbox listener or the unverified hook
  deliveries: [], // every POST to an inbox, with the response status
  sent: [], // every activity this peer sent
  followers: new Map(), // actor id -> { id, inboxId, sharedInbox, follow }
  following: new Map(), // actor id -> { followId, state, follow }
  notes: new Map(), // note id -> { id, content, inReplyTo, to, cc, mention, published, updated, deleted }
  activities: new Map(), // activity id -> compact JSON-LD as sent
  likes: new Map(), // object id -> Like
  announces: new Map(), // object id -> Announce
};
let seq = 0;
const requestInfo = new AsyncLocalStorage();

function push(list, item) {
  list.push(item);
  if (list.length > MAX_RECORDS) list.splice(0, list.length - MAX_RECORDS);
}

// ---------------------------------------------------------------------------
// Keys and federation

const rsaKeyPair = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
const ed25519KeyPair = await generateCryptoKeyPair("Ed25519");

const kv = new MemoryKvStore();
const federation = createFederation({
  kv,
  origin: ORIGIN,
  allowPrivateAddress: true,
  firstKnock: args["first-knock"],
  // Sends happen inline (no queue), so failures surface in the control call.
});

// A loader that never caches: used by /_control/lookup so a test always sees
// the document as the remote serves it now.
const freshDocumentLoader = getDocumentLoader({ allowPrivateAddress: true });

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== USER) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: `Fedify peer ${identifier}`,
      summary: "Interop test peer built on Fedify.",
      url: ctx.getActorUri(identifier),
      inbox: ctx.getInboxUri(identifier),
      outbox: ctx.getOutboxUri(identifier),
      followers: ctx.getFollowersUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      manuallyApprovesFollowers: state.followPolicy === "manual",
      publicKey: keys[0].cryptographicKey,
      assertionMethods: keys.map((k) => k.multikey),
      aliases: state.aliases.map((a) => new URL(a)),
    });
  })
  .mapHandle((_ctx, username) => (username === USER ? USER : null))
  .setKeyPairsDispatcher((_ctx, identifier) =>
    identifier === USER ? [rsaKeyPair, ed25519KeyPair] : [],
  );

federation
  .setFollowersDispatcher("/users/{identifier}/followers", (_ctx, identifier) => {
    if (identifier !== USER) return null;
    const items = [...state.followers.values()].map((f) => ({
      id: new URL(f.id),
      inboxId: f.inboxId == null ? null : new URL(f.inboxId),
      endpoints: f.sharedInbox == null ? null : { sharedInbox: new URL(f.sharedInbox) },
    }));
    return { items };
  })
  .setCounter((_ctx, identifier) => (identifier === USER ? state.followers.size : null));

federation
  .setOutboxDispatcher("/users/{identifier}/outbox", (_ctx, identifier) => {
    if (identifier !== USER) return null;
    return { items: [] };
  })
  .setCounter((_ctx, identifier) => (identifier === USER ? 0 : null));

function buildNote(ctx, n) {
  return new Note({
    id: new URL(n.id),
    attribution: ctx.getActorUri(USER),
    content: n.content,
    url: new URL(n.id),
    replyTarget: n.inReplyTo == null ? null : new URL(n.inReplyTo),
    to: PUBLIC_COLLECTION,
    ccs: n.cc.map((u) => new URL(u)),
    tags: [
      ...(n.mention == null
        ? []
        : [new Mention({ href: new URL(n.mention.href), name: n.mention.name ?? null })]),
      // Custom emoji, shaped as Mastodon sends them: {type: Emoji, name: ":x:", icon: Image}.
      ...(n.emoji ?? []).map(
        (e) =>
          new Emoji({
            id: new URL(e.id),
            name: e.name,
            icon: new Image({ url: new URL(e.url), mediaType: e.mediaType ?? null }),
          }),
      ),
    ],
    published: Temporal.Instant.from(n.published),
    updated: n.updated == null ? null : Temporal.Instant.from(n.updated),
  });
}

federation.setObjectDispatcher(Note, "/users/{identifier}/notes/{id}", (ctx, values) => {
  if (values.identifier !== USER) return null;
  const n = state.notes.get(ctx.getObjectUri(Note, values).href);
  if (n == null || n.deleted) return null;
  return buildNote(ctx, n);
});

// ---------------------------------------------------------------------------
// Inbox

async function recordActivity(ctx, activity, verified, reason) {
  const info = requestInfo.getStore();
  if (info != null) info.dispatched = true;
  let json = null;
  try {
    json = await activity.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader });
  } catch (error) {
    json = { error: String(error) };
  }
  const raw = info?.json ?? null;
  const rawObject = raw != null && typeof raw.object === "object" ? raw.object : null;
  const record = {
    seq: ++seq,
    type: typeof json?.type === "string" ? json.type : getTypeId(activity).href,
    id: activity.id?.href ?? null,
    actor: activity.actorId?.href ?? null,
    object: activity.objectId?.href ?? null,
    objectType:
      rawObject != null && typeof rawObject.type === "string"
        ? rawObject.type
        : typeof json?.object === "object" && json.object != null
          ? (json.object.type ?? null)
          : null,
    verified,
    reason: reason == null ? null : reasonToJson(reason),
    inbox: info?.path ?? null,
    signature: info?.signature ?? null,
    receivedAt: new Date().toISOString(),
    proof: await checkProof(ctx, raw),
    json,
    raw,
  };
  push(state.received, record);
  log.info("received {type} {id} from {actor} (verified: {verified})", record);
  return record;
}

// FEP-8b32: verify the activity's own integrity proof with Fedify, whatever the inbox
// decided from the HTTP signature, so tests can require both.
async function checkProof(ctx, raw) {
  if (raw == null || typeof raw !== "object" || raw.proof == null) {
    return { present: false, verified: null };
  }
  try {
    const opts = { documentLoader: freshDocumentLoader, contextLoader: ctx.contextLoader };
    const verified = await verifyObject(Activity, raw, opts);
    return { present: true, verified: verified != null };
  } catch (error) {
    return { present: true, verified: false, error: String(error) };
  }
}

function reasonToJson(reason) {
  const out = { type: reason.type };
  if (reason.keyId != null) out.keyId = reason.keyId.href;
  if (reason.result != null) {
    if ("status" in reason.result) out.status = reason.result.status;
    if (reason.result.error != null) out.error = String(reason.result.error);
  }
  return out;
}

async function onFollow(ctx, follow) {
  await recordActivity(ctx, follow, true);
  if (follow.objectId?.href !== ctx.getActorUri(USER).href) return;
  if (state.followPolicy === "manual") return;
  const follower = await follow.getActor(ctx);
  if (follower == null || follower.id == null) return;
  if (state.followPolicy === "accept") {
    state.followers.set(follower.id.href, {
      id: follower.id.href,
      inboxId: follower.inboxId?.href ?? null,
      sharedInbox: follower.endpoints?.sharedInbox?.href ?? null,
      follow: follow.id?.href ?? null,
    });
  }
  const Answer = state.followPolicy === "accept" ? Accept : Reject;
  const reply = new Answer({
    id: newActivityId(state.followPolicy),
    actor: ctx.getActorUri(USER),
    object: follow,
    to: follower.id,
  });
  await send(ctx, follower, reply, {});
}

async function onUndo(ctx, undo) {
  await recordActivity(ctx, undo, true);
  const inner = await undo.getObject(ctx).catch(() => null);
  if (inner instanceof Follow && undo.actorId != null) {
    state.followers.delete(undo.actorId.href);
  }
}

async function onAcceptOrReject(ctx, activity) {
  await recordActivity(ctx, activity, true);
  const actorId = activity.actorId?.href;
  const entry = actorId == null ? null : state.following.get(actorId);
  if (entry != null) entry.state = activity instanceof Accept ? "accepted" : "rejected";
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Follow, onFollow)
  .on(Undo, onUndo)
  .on(Accept, onAcceptOrReject)
  .on(Reject, onAcceptOrReject)
  .on(Activity, async (ctx, activity) => {
    await recordActivity(ctx, activity, true);
  })
  .onUnverifiedActivity(async (ctx, activity, reason) => {
    await recordActivity(ctx, activity, false, reason);
    // Keep Fedify's default 401 response.
  })
  .onError((_ctx, error) => {
    log.error("inbox error: {error}", { error });
    const info = requestInfo.getStore();
    if (info != null) info.error = String(error?.stack ?? error);
  });

// ---------------------------------------------------------------------------
// Sending

function newActivityId(kind) {
  return new URL(`/activities/${kind}/${randomUUID()}`, ORIGIN);
}

function meRef(ctx) {
  return ctx.getActorUri(USER);
}

async function send(ctx, recipients, activity, { preferSharedInbox = true } = {}) {
  const list =
    recipients === "followers" ? [] : Array.isArray(recipients) ? recipients : [recipients];
  const json = await activity.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader });
  const record = {
    seq: ++seq,
    type: json.type,
    id: activity.id.href,
    object: activity.objectId?.href ?? null,
    to: recipients === "followers" ? ["followers"] : list.map((r) => r.id?.href ?? null),
    sentAt: new Date().toISOString(),
    ok: false,
    error: null,
    json,
  };
  push(state.sent, record);
  state.activities.set(activity.id.href, json);
  try {
    await ctx.sendActivity({ identifier: USER }, recipients === "followers" ? recipients : list, activity, {
      preferSharedInbox,
      immediate: true,
    });
    record.ok = true;
  } catch (error) {
    record.error = String(error);
    throw error;
  }
  return record;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function required(body, name) {
  const value = body[name];
  if (value == null || value === "") throw new HttpError(400, `missing field: ${name}`);
  return value;
}

async function lookupActor(ctx, idOrHandle) {
  const obj = await ctx.lookupObject(idOrHandle);
  if (obj == null) throw new HttpError(502, `could not look up ${idOrHandle}`);
  if (obj.inboxId == null) throw new HttpError(502, `${idOrHandle} is not an actor with an inbox`);
  return obj;
}

async function lookupAnyObject(ctx, id) {
  const obj = await ctx.lookupObject(id);
  if (obj == null) throw new HttpError(502, `could not look up ${id}`);
  return obj;
}

/** The author of a remote object, as an actor (Recipient). */
async function authorOf(ctx, obj) {
  const attributed = obj.attributionIds ?? [];
  for (const id of attributed) {
    const actor = await ctx.lookupObject(id).catch(() => null);
    if (actor?.inboxId != null) return actor;
  }
  return null;
}

/** Recipients from an explicit `to` (actor id/handle or list of them), else the fallback. */
async function recipientsFor(ctx, body, fallback) {
  if (body.to != null) {
    const ids = Array.isArray(body.to) ? body.to : [body.to];
    return Promise.all(ids.map((id) => lookupActor(ctx, id)));
  }
  if (fallback == null) throw new HttpError(422, "no recipient: pass `to`");
  return Array.isArray(fallback) ? fallback : [fallback];
}

function handleOf(actor) {
  if (actor?.id == null || actor.preferredUsername == null) return null;
  return `@${actor.preferredUsername}@${actor.id.host}`;
}

function sendOpts(body) {
  return { preferSharedInbox: body.preferSharedInbox ?? body.sharedInbox ?? true };
}

// ---------------------------------------------------------------------------
// Control API

const control = {
  "GET health": (ctx) => ({
    ok: true,
    fedify: "2.3.6",
    node: process.version,
    origin: ORIGIN,
    actor: meRef(ctx).href,
    handle: `@${USER}@${new URL(ORIGIN).host}`,
    inbox: ctx.getInboxUri(USER).href,
    sharedInbox: ctx.getInboxUri().href,
    followPolicy: state.followPolicy,
  }),

  "GET received": (_ctx, _body, q) => {
    let items = state.received;
    if (q.get("type")) items = items.filter((r) => r.type === q.get("type"));
    if (q.get("since")) items = items.filter((r) => r.seq > Number(q.get("since")));
    if (q.get("verified")) items = items.filter((r) => String(r.verified) === q.get("verified"));
    return { items };
  },
  "GET deliveries": () => ({ items: state.deliveries }),
  "GET sent": () => ({ items: state.sent }),
  "GET state": () => ({
    followPolicy: state.followPolicy,
    followers: [...state.followers.values()],
    following: [...state.following.entries()].map(([actor, f]) => ({
      actor,
      followId: f.followId,
      state: f.state,
    })),
    notes: [...state.notes.values()],
  }),

  "POST reset": () => {
    state.received.length = 0;
    state.deliveries.length = 0;
    state.sent.length = 0;
    return { ok: true };
  },
  "POST clear-cache": async () => {
    let removed = 0;
    for (const prefix of [["_fedify", "remoteDocument"], ["_fedify", "publicKey"]]) {
      const keys = [];
      for await (const entry of kv.list(prefix)) keys.push(entry.key);
      for (const key of keys) await kv.delete(key);
      removed += keys.length;
    }
    return { ok: true, removed };
  },
  "POST config": (_ctx, body) => {
    if (body.followPolicy != null) {
      if (!["accept", "reject", "manual"].includes(body.followPolicy)) {
        throw new HttpError(400, "followPolicy must be accept, reject or manual");
      }
      state.followPolicy = body.followPolicy;
    }
    if (body.aliases != null) {
      if (!Array.isArray(body.aliases)) throw new HttpError(400, "aliases must be a list of URLs");
      state.aliases = body.aliases.map((a) => new URL(a).href);
    }
    return { followPolicy: state.followPolicy, aliases: state.aliases };
  },

  "GET lookup": async (ctx, _body, q) => lookup(ctx, required(Object.fromEntries(q), "id"), q),

  "POST follow": async (ctx, body) => {
    const target = required(body, "handle");
    const actor = await lookupActor(ctx, target);
    const follow = new Follow({
      id: newActivityId("follow"),
      actor: meRef(ctx),
      object: actor.id,
      to: actor.id,
    });
    state.following.set(actor.id.href, { followId: follow.id.href, state: "pending", follow });
    await send(ctx, actor, follow, sendOpts(body));
    return {
      followId: follow.id.href,
      actor: actor.id.href,
      inbox: actor.inboxId?.href ?? null,
      sharedInbox: actor.endpoints?.sharedInbox?.href ?? null,
    };
  },

  "POST unfollow": async (ctx, body) => {
    const actor = await lookupActor(ctx, required(body, "actor"));
    const entry = state.following.get(actor.id.href);
    if (entry == null) throw new HttpError(409, `not following ${actor.id.href}`);
    const undo = new Undo({
      id: newActivityId("undo"),
      actor: meRef(ctx),
      object: entry.follow,
      to: actor.id,
    });
    await send(ctx, actor, undo, sendOpts(body));
    state.following.delete(actor.id.href);
    return { id: undo.id.href, followId: entry.followId };
  },

  "POST note": async (ctx, body) => {
    // A top-level public note; delivered to followers (if any) and `to`.
    const noteId = ctx.getObjectUri(Note, { identifier: USER, id: randomUUID() }).href;
    const n = {
      id: noteId,
      content: required(body, "content"),
      inReplyTo: null,
      cc: [ctx.getFollowersUri(USER).href],
      mention: null,
      published: Temporal.Now.instant().toString(),
      updated: null,
      deleted: false,
      recipients: body.to == null ? [] : Array.isArray(body.to) ? body.to : [body.to],
    };
    state.notes.set(noteId, n);
    const create = new Create({
      id: newActivityId("create"),
      actor: meRef(ctx),
      object: buildNote(ctx, n),
      to: PUBLIC_COLLECTION,
      ccs: n.cc.map((u) => new URL(u)),
      published: Temporal.Instant.from(n.published),
    });
    const delivered = [];
    if (state.followers.size > 0) {
      await send(ctx, "followers", create, sendOpts(body));
      delivered.push("followers");
    }
    if (n.recipients.length > 0) {
      await send(ctx, await recipientsFor(ctx, body, null), create, sendOpts(body));
      delivered.push(...n.recipients);
    }
    return { noteId, id: create.id.href, deliveredTo: delivered };
  },

  "POST reply": async (ctx, body) => {
    const inReplyTo = required(body, "inReplyTo");
    const target = await lookupAnyObject(ctx, inReplyTo);
    const author = await authorOf(ctx, target);
    let mentioned = author;
    if (body.mention != null) mentioned = await lookupActor(ctx, body.mention);
    const recipients = await recipientsFor(
      ctx,
      body,
      [author, mentioned].filter(
        (a, i, all) => a != null && all.findIndex((b) => b?.id?.href === a.id.href) === i,
      ),
    );
    const noteId = ctx.getObjectUri(Note, { identifier: USER, id: randomUUID() }).href;
    const cc = [...new Set([...recipients.map((r) => r.id.href), ctx.getFollowersUri(USER).href])];
    const n = {
      id: noteId,
      content: required(body, "content"),
      inReplyTo: target.id?.href ?? inReplyTo,
      cc,
      mention:
        mentioned == null ? null : { href: mentioned.id.href, name: handleOf(mentioned) },
      emoji: body.emoji ?? [],
      published: Temporal.Now.instant().toString(),
      updated: null,
      deleted: false,
      recipients: recipients.map((r) => r.id.href),
    };
    state.notes.set(noteId, n);
    const create = new Create({
      id: newActivityId("create"),
      actor: meRef(ctx),
      object: buildNote(ctx, n),
      to: PUBLIC_COLLECTION,
      ccs: cc.map((u) => new URL(u)),
      published: Temporal.Instant.from(n.published),
    });
    await send(ctx, recipients, create, sendOpts(body));
    return { noteId, id: create.id.href, to: n.recipients };
  },

  "POST edit": async (ctx, body) => {
    const n = state.notes.get(required(body, "noteId"));
    if (n == null || n.deleted) throw new HttpError(404, "unknown note");
    n.content = required(body, "content");
    n.updated = Temporal.Now.instant().toString();
    const update = new Update({
      id: newActivityId("update"),
      actor: meRef(ctx),
      object: buildNote(ctx, n),
      to: PUBLIC_COLLECTION,
      ccs: n.cc.map((u) => new URL(u)),
      updated: Temporal.Instant.from(n.updated),
    });
    const recipients = await recipientsFor(
      ctx,
      body,
      await Promise.all(n.recipients.map((id) => lookupActor(ctx, id))),
    );
    await send(ctx, recipients, update, sendOpts(body));
    return { noteId: n.id, id: update.id.href };
  },

  "POST delete": async (ctx, body) => {
    const n = state.notes.get(required(body, "noteId"));
    if (n == null || n.deleted) throw new HttpError(404, "unknown note");
    n.deleted = true;
    const del = new Delete({
      id: newActivityId("delete"),
      actor: meRef(ctx),
      object: new Tombstone({ id: new URL(n.id), deleted: Temporal.Now.instant() }),
      to: PUBLIC_COLLECTION,
      ccs: n.cc.map((u) => new URL(u)),
    });
    const recipients = await recipientsFor(
      ctx,
      body,
      await Promise.all(n.recipients.map((id) => lookupActor(ctx, id))),
    );
    await send(ctx, recipients, del, sendOpts(body));
    return { noteId: n.id, id: del.id.href };
  },

  "POST like": async (ctx, body) => {
    const objectId = required(body, "object");
    const target = await lookupAnyObject(ctx, objectId);
    const recipients = await recipientsFor(ctx, body, await authorOf(ctx, target));
    const like = new Like({
      id: newActivityId("like"),
      actor: meRef(ctx),
      object: target.id ?? new URL(objectId),
      tos: recipients.map((r) => r.id),
    });
    await send(ctx, recipients, like, sendOpts(body));
    state.likes.set(objectId, { activity: like, recipients: recipients.map((r) => r.id.href) });
    return { id: like.id.href, to: recipients.map((r) => r.id.href) };
  },

  "POST unlike": async (ctx, body) => undoInteraction(ctx, body, state.likes, "like"),

  "POST announce": async (ctx, body) => {
    const objectId = required(body, "object");
    const target = await lookupAnyObject(ctx, objectId);
    const recipients = await recipientsFor(ctx, body, await authorOf(ctx, target));
    const announce = new Announce({
      id: newActivityId("announce"),
      actor: meRef(ctx),
      object: target.id ?? new URL(objectId),
      to: PUBLIC_COLLECTION,
      ccs: [...recipients.map((r) => r.id), ctx.getFollowersUri(USER)],
      published: Temporal.Now.instant(),
    });
    await send(ctx, recipients, announce, sendOpts(body));
    state.announces.set(objectId, {
      activity: announce,
      recipients: recipients.map((r) => r.id.href),
    });
    return { id: announce.id.href, to: recipients.map((r) => r.id.href) };
  },

  "POST unannounce": async (ctx, body) =>
    undoInteraction(ctx, body, state.announces, "announce"),

  "POST send": async (ctx, body) => {
    // Escape hatch: send an arbitrary activity (JSON-LD) signed by this peer.
    const json = { ...required(body, "activity") };
    json["@context"] ??= "https://www.w3.org/ns/activitystreams";
    json.id ??= newActivityId("custom").href;
    json.actor ??= meRef(ctx).href;
    const activity = await Activity.fromJsonLd(json, ctx);
    const recipients = await recipientsFor(ctx, body, null);
    await send(ctx, recipients, activity, sendOpts(body));
    return { id: activity.id.href, to: recipients.map((r) => r.id.href) };
  },

  "POST quote-authorization": async (ctx, body) => {
    // FEP-044f: a stamp by this peer's actor approving `interactingObject` as a quote of
    // `interactionTarget`, dereferenceable at its id like the activities this peer sent.
    const stamp = new QuoteAuthorization({
      id: new URL(`/users/${USER}/quote_authorizations/${randomUUID()}`, ORIGIN),
      attribution: meRef(ctx),
      interactingObject: new URL(required(body, "interactingObject")),
      interactionTarget: new URL(required(body, "interactionTarget")),
    });
    const json = await stamp.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader });
    state.activities.set(stamp.id.href, json);
    return { id: stamp.id.href, json };
  },
};

async function undoInteraction(ctx, body, store, kind) {
  const objectId = required(body, "object");
  const entry = store.get(objectId);
  if (entry == null) throw new HttpError(409, `no ${kind} of ${objectId} to undo`);
  const recipients = await recipientsFor(
    ctx,
    body,
    await Promise.all(entry.recipients.map((id) => lookupActor(ctx, id))),
  );
  const undo = new Undo({
    id: newActivityId("undo"),
    actor: meRef(ctx),
    object: entry.activity,
    tos: recipients.map((r) => r.id),
  });
  await send(ctx, recipients, undo, sendOpts(body));
  store.delete(objectId);
  return { id: undo.id.href, undone: entry.activity.id.href };
}

async function lookup(ctx, id, q) {
  const cached = q.get("cache") === "1";
  const documentLoader = cached ? ctx.documentLoader : freshDocumentLoader;
  const opts = { documentLoader, contextLoader: ctx.contextLoader };
  const result = { id, url: null, raw: null, object: null, type: null, errors: [] };
  let url = id;
  if (!/^https?:/.test(id)) {
    // A handle or acct: URI: resolve through WebFinger like any fediverse server.
    const obj = await ctx.lookupObject(id, opts).catch((e) => {
      result.errors.push(`lookupObject: ${e}`);
      return null;
    });
    if (obj?.id == null) {
      result.errors.push(`could not resolve ${id}`);
      return result;
    }
    url = obj.id.href;
  }
  result.url = url;
  let raw;
  try {
    raw = (await documentLoader(url)).document;
    result.raw = raw;
  } catch (error) {
    result.errors.push(`fetch: ${error}`);
    return result;
  }
  let obj = null;
  try {
    obj = await APObject.fromJsonLd(raw, opts);
    result.object = await obj.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader });
    result.type = result.object.type ?? getTypeId(obj).href;
  } catch (error) {
    result.errors.push(`parse: ${error}`);
  }
  if (obj?.id != null && obj.id.origin !== new URL(url).origin) {
    result.errors.push(`id ${obj.id.href} is not on the origin of ${url}`);
  }
  // FEP-8b32 Object Integrity Proofs.
  if (raw != null && typeof raw === "object" && raw.proof != null) {
    try {
      const verified = await verifyObject(APObject, raw, opts);
      result.proof = { present: true, verified: verified != null };
    } catch (error) {
      result.proof = { present: true, verified: false, error: String(error) };
    }
  } else {
    result.proof = { present: false, verified: null };
  }
  // Linked Data Signatures (RsaSignature2017), as Mastodon uses.
  if (raw != null && typeof raw === "object" && raw.signature != null) {
    try {
      result.ldSignature = { present: true, verified: await verifyJsonLd(raw, opts) };
    } catch (error) {
      result.ldSignature = { present: true, verified: false, error: String(error) };
    }
  } else {
    result.ldSignature = { present: false, verified: null };
  }
  // Collections: list the item ids (bounded) so tests can check paging.
  if (obj != null && q.get("items") === "1" && typeof obj.getItems === "function") {
    const items = [];
    try {
      const limit = Number(q.get("limit") ?? 200);
      for await (const item of traverseCollection(obj, opts)) {
        items.push(item.id?.href ?? item.href?.href ?? null);
        if (items.length >= limit) break;
      }
    } catch (error) {
      result.errors.push(`items: ${error}`);
    }
    result.items = items;
  }
  result.ok = result.errors.length === 0 && result.object != null;
  return result;
}

// ---------------------------------------------------------------------------
// HTTP server

function json(status, body) {
  return new Response(JSON.stringify(body, null, 2), {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8" },
  });
}

async function handleControl(request, url) {
  const name = url.pathname.slice("/_control/".length);
  const handler = control[`${request.method} ${name}`];
  if (handler == null) return json(404, { error: `no control endpoint ${request.method} ${name}` });
  let body = {};
  if (request.method === "POST") {
    const text = await request.text();
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return json(400, { error: "body is not JSON" });
      }
    }
  }
  const ctx = federation.createContext(new URL(ORIGIN), undefined);
  try {
    return json(200, await handler(ctx, body, url.searchParams));
  } catch (error) {
    const status = error instanceof HttpError ? error.status : 502;
    log.error("control {name} failed: {error}", { name, error });
    return json(status, { error: String(error?.message ?? error), stack: error?.stack ?? null });
  }
}

function signatureInfo(request, raw) {
  const h = request.headers;
  const info = { scheme: null, keyId: null, proof: false, ldSignature: false, digest: null };
  if (h.has("signature-input")) {
    info.scheme = "rfc9421";
    const m = /keyid="([^"]+)"/.exec(h.get("signature-input"));
    info.keyId = m?.[1] ?? null;
  } else if (h.has("signature")) {
    info.scheme = "draft-cavage";
    const m = /keyId="([^"]+)"/.exec(h.get("signature"));
    info.keyId = m?.[1] ?? null;
  }
  info.digest = h.get("content-digest") ?? h.get("digest");
  if (raw != null && typeof raw === "object") {
    info.proof = raw.proof != null;
    info.ldSignature = raw.signature != null;
  }
  return info;
}

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname.startsWith("/_control/")) return handleControl(request, url);

  if (request.method === "GET") {
    // Deleted notes answer 410 with a Tombstone, as Mastodon does.
    const n = state.notes.get(new URL(url.pathname, ORIGIN).href);
    if (n?.deleted) {
      return new Response(
        JSON.stringify({
          "@context": "https://www.w3.org/ns/activitystreams",
          id: n.id,
          type: "Tombstone",
        }),
        { status: 410, headers: { "Content-Type": "application/activity+json" } },
      );
    }
    // Activities this peer sent are dereferenceable (unsigned copies).
    const sent = state.activities.get(new URL(url.pathname, ORIGIN).href);
    if (sent != null) {
      return new Response(JSON.stringify(sent), {
        headers: { "Content-Type": "application/activity+json" },
      });
    }
  }

  const isInbox =
    request.method === "POST" &&
    (url.pathname === "/inbox" || /^\/users\/[^/]+\/inbox$/.test(url.pathname));
  if (!isInbox) return federation.fetch(request, { contextData: undefined });

  const text = await request.clone().text();
  let raw = null;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = null;
  }
  const info = {
    path: url.pathname,
    json: raw,
    signature: signatureInfo(request, raw),
    dispatched: false,
    error: null,
  };
  const response = await requestInfo.run(info, () =>
    federation.fetch(request, { contextData: undefined }),
  );
  const delivery = {
    seq: ++seq,
    path: url.pathname,
    status: response.status,
    dispatched: info.dispatched,
    error: info.error,
    contentType: request.headers.get("content-type"),
    signature: info.signature,
    activityId: raw?.id ?? null,
    type: raw?.type ?? null,
    actor: typeof raw?.actor === "string" ? raw.actor : (raw?.actor?.id ?? null),
    body: raw ?? text.slice(0, 4000),
    receivedAt: new Date().toISOString(),
  };
  if (!response.ok) {
    delivery.response = await response
      .clone()
      .text()
      .catch(() => null);
  }
  push(state.deliveries, delivery);
  log.info("inbox POST {path} {type} -> {status}", delivery);
  return response;
}

const server = http.createServer(async (req, res) => {
  try {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const host = req.headers.host ?? new URL(ORIGIN).host;
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (Array.isArray(v)) for (const item of v) headers.append(k, item);
      else if (v != null) headers.set(k, v);
    }
    const request = new Request(`http://${host}${req.url}`, {
      method: req.method,
      headers,
      body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
    });
    const response = await handle(request);
    const out = Buffer.from(await response.arrayBuffer());
    const outHeaders = {};
    response.headers.forEach((value, key) => {
      outHeaders[key] = value;
    });
    res.writeHead(response.status, outHeaders);
    res.end(out);
  } catch (error) {
    log.error("request failed: {error}", { error });
    if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
    res.end(String(error?.stack ?? error));
  }
});

server.listen(PORT, HOST, () => {
  const address = server.address();
  // The test driver waits for /_control/health; this line is for humans.
  console.log(
    JSON.stringify({ listening: `${ORIGIN}`, port: address.port, actor: `${ORIGIN}/users/${USER}` }),
  );
});

// Exit with the test run that started us, even if it could not stop us.
if (args["parent-pid"] !== "") {
  const parentPid = Number.parseInt(args["parent-pid"], 10);
  setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      log.warn("parent process {pid} is gone; exiting", { pid: parentPid });
      process.exit(0);
    }
  }, 1000).unref();
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}

/**
 * How the fake servers (Clever and OneRoster) put a response on the wire, with the
 * transport faults of Faults.ts: a connection dropped or a body cut off half-way, a huge or
 * endless body (streamed with backpressure, never built in memory), a drip-fed body.
 */
import type * as Http from "node:http"
import type { Fault } from "./Faults.ts"

export interface Outgoing {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

/** Runs `send` for as long as the client listens; resolves when it stops or hangs up. */
const whileOpen = (res: Http.ServerResponse) => !res.destroyed && !res.writableEnded

/** Writes `chunk`, waiting for the socket to drain; false once the client has gone. */
const write = (res: Http.ServerResponse, chunk: Buffer | string): Promise<boolean> =>
  new Promise((resolve) => {
    if (!whileOpen(res)) return resolve(false)
    if (res.write(chunk)) return resolve(true)
    const done = (ok: boolean) => {
      res.off("drain", onDrain)
      res.off("close", onClose)
      resolve(ok)
    }
    const onDrain = () => done(true)
    const onClose = () => done(false)
    res.once("drain", onDrain)
    res.once("close", onClose)
  })

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const PADDING = Buffer.alloc(64 * 1024, " ")

/** Sends `out`, damaged or replaced as `fault` says. */
export const send = async (res: Http.ServerResponse, out: Outgoing, fault: Fault | undefined): Promise<void> => {
  const body = Buffer.from(out.body, "utf8")
  const half = body.subarray(0, Math.floor(body.length / 2))
  switch (fault?.kind) {
    case "dropConnection":
      // The full length is announced, so the client sees the connection die mid-body.
      res.writeHead(out.status, { ...out.headers, "Content-Length": String(body.length) })
      res.write(half, () => res.destroy())
      return
    case "truncate":
      // No Content-Length: the response ends cleanly (chunked), only the JSON is cut.
      res.writeHead(out.status, { ...out.headers, Connection: "close" })
      res.end(half)
      return
    case "hugeBody": {
      const head = Buffer.from(`{"data":[`)
      const tail = Buffer.from(`],"links":[]}`)
      const total = Math.max(fault.bytes, head.length + tail.length)
      res.writeHead(200, {
        "Content-Type": "application/json; charset=utf-8",
        ...(fault.declareLength === false ? {} : { "Content-Length": String(total) })
      })
      if (!(await write(res, head))) return
      let left = total - head.length - tail.length
      while (left > 0) {
        const chunk = left >= PADDING.length ? PADDING : PADDING.subarray(0, left)
        if (!(await write(res, chunk))) return
        left -= chunk.length
      }
      res.end(tail)
      return
    }
    case "endlessBody":
      res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" })
      if (!(await write(res, `{"data":[`))) return
      while (await write(res, PADDING)) {
        // until the client hangs up
      }
      return
    case "drip": {
      res.writeHead(out.status, { ...out.headers, "Content-Length": String(body.length) })
      for (let offset = 0; offset < body.length; offset += fault.chunkBytes) {
        if (!(await write(res, body.subarray(offset, offset + fault.chunkBytes)))) return
        await sleep(fault.intervalMs)
      }
      res.end()
      return
    }
    default:
      res.writeHead(out.status, { ...out.headers, "Content-Length": String(body.length) })
      res.end(body)
  }
}

/** `out` with `fault`'s answer-level changes: headers merged, the JSON rewritten. */
export const amend = (out: Outgoing, fault: Fault | undefined, request: Parameters<Extract<Fault, { kind: "rewrite" }>["rewrite"]>[1]): Outgoing => {
  if (fault?.kind === "headers") return { ...out, headers: { ...out.headers, ...fault.headers } }
  if (fault?.kind === "rewrite" && out.status === 200) {
    const rewritten = fault.rewrite(JSON.parse(out.body), request)
    return { ...out, body: typeof rewritten === "string" ? rewritten : JSON.stringify(rewritten) }
  }
  return out
}

/** The answers that replace the API (before auth): a raw body, a redirect. */
export const replacement = (fault: Fault | undefined): Outgoing | undefined => {
  if (fault?.kind === "body") return { status: 200, body: fault.body, headers: { "Content-Type": fault.contentType ?? "application/json; charset=utf-8" } }
  if (fault?.kind === "redirect") return { status: fault.status ?? 302, body: "", headers: { Location: fault.location } }
  return undefined
}

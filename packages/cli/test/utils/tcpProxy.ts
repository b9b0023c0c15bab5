/**
 * A TCP proxy the test can cut and restore: while cut, it drops every
 * connection it holds and every new one at once (a server that is down to
 * its clients, on the same address), then forwards again.
 */
import * as net from "node:net"

export interface TcpProxy {
  readonly port: number
  readonly cut: () => void
  readonly restore: () => void
  readonly close: () => Promise<void>
}

export const tcpProxy = (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> =>
  new Promise((resolve) => {
    let down = false
    const sockets = new Set<net.Socket>()
    const server = net.createServer((client) => {
      if (down) {
        client.destroy()
        return
      }
      const upstream = net.connect(target.port, target.host)
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
      }
      client.on("close", () => upstream.destroy())
      upstream.on("close", () => client.destroy())
      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      resolve({
        port,
        cut: () => {
          down = true
          for (const socket of sockets) socket.destroy()
        },
        restore: () => {
          down = false
        },
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          })
      })
    })
  })

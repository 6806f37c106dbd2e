#!/usr/bin/env python3
"""tcp_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT [COUNT_FILE]: a TCP proxy on 127.0.0.1.

Tests place it between two hosts to cut their connection (kill it) and benchmarks to count the
bytes that cross (both ways; the total is written to COUNT_FILE after every chunk).
"""
import os
import socket
import sys
import threading

listen, host, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count_file = sys.argv[4] if len(sys.argv) > 4 else None
total = 0
lock = threading.Lock()


def pipe(a, b):
    global total
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
            if count_file:
                with lock:
                    total += len(data)
                    # Replaced whole, so that a reader never sees it empty or half written.
                    with open(count_file + ".new", "w") as f:
                        f.write(str(total))
                    os.replace(count_file + ".new", count_file)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen))
server.listen(16)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection((host, target))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

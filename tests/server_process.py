"""Wait until a `xcscan server serve` subprocess answers TLS on loopback (shared by the server and
agent tests)."""
import socket
import ssl
import time


def wait_until_serving(proc, port, ca_file, log_path, timeout=30):
    """Return once a TLS handshake with the CA-pinned server succeeds; fail with the server's log."""
    ctx = ssl.create_default_context(cafile=ca_file)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited: %s" % open(log_path).read())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                with ctx.wrap_socket(sock, server_hostname="127.0.0.1"):
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start: %s" % open(log_path).read())

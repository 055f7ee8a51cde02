"""#22 "Hangs and stalls in the board": bounded loopback tests of a real BoardServer."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from sgdlab.board import BoardServer


def make_run(folder, status="completed", rows=3):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dataset": "spirals", "layers": [4], "optimizer": "sgd",
                                                    "lr": 0.1}))
    lines = ["epoch,iteration,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
    lines += [f"{e},{e * 10},0.5,0.8,0.6,0.7,0.1,{e}" for e in range(1, rows + 1)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps({"status": status}))


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "good")
    make_run(root / "fifo")
    os.unlink(root / "fifo" / "metrics.csv")
    os.mkfifo(root / "fifo" / "metrics.csv")
    make_run(root / "cr")
    with open(root / "cr" / "metrics.csv", "a") as f:
        f.write('1,"2\r3",0.5\n4,5,6,7,8,9,10,11\n')
    make_run(root / "nested")
    (root / "nested" / "summary.json").write_text("[" * 100000 + "]" * 100000)
    make_run(root / "huge-number")
    (root / "huge-number" / "summary.json").write_text('{"status": "completed", "seconds": ' + "9" * 5000 + "}")
    server = BoardServer(root, port=0, read_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None, timeout=2.0):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_runs_answer_within_a_second_under_300_idle_connections_and_a_fifo(board):
    host, port = board.server_address[:2]
    idle = []
    try:
        for k in range(300):
            s = socket.create_connection((host, port), timeout=5)
            if k % 2:
                s.sendall(b"POST /api/play/create HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n{")
            idle.append(s)
        start = time.monotonic()
        status, data = request(board, "GET", "/api/runs", headers={"Host": f"{host}:{port}"}, timeout=1.0)
        elapsed = time.monotonic() - start
    finally:
        for s in idle:
            s.close()
    assert status == 200 and elapsed < 1.0, (status, elapsed)
    runs = {r["name"]: r for r in json.loads(data)["runs"]}
    assert runs["good"]["status"] == "completed" and runs["good"]["rows"] == 3
    for name in ("fifo", "cr", "nested", "huge-number"):
        assert name in runs, name                         # listed, never failing the others
    assert runs["nested"]["status"] in ("broken", "running") and runs["fifo"]["rows"] == 0


def test_idle_connections_are_closed_after_the_read_timeout(board):
    host, port = board.server_address[:2]
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /api/runs HTTP/1.1\r\n")          # never finishes its headers
    start = time.monotonic()
    while s.recv(1024):                                # the server closes it (read_timeout=1 s)
        pass
    assert time.monotonic() - start < 4
    s.close()


@pytest.mark.parametrize("body", [b"[" * 4000 + b"]" * 4000, b'{"dataset": ' + b"9" * 4000 + b"}",
                                  b'{"a": ' * 200 + b"1" + b"}" * 200])
def test_nested_or_huge_bodies_are_400(board, body):
    host, port = board.server_address[:2]
    status, data = request(board, "POST", "/api/play/create", body=body[:4096],
                           headers={"Host": f"{host}:{port}", "Content-Type": "application/json"})
    assert status in (400, 413), (status, data)
    assert "Traceback" not in data.decode()


def test_unicode_digits_in_grid_are_400(board):
    host, port = board.server_address[:2]
    status, data = request(board, "POST", "/api/play/create", body=b"{}", headers={"Host": f"{host}:{port}"})
    assert status == 200, data
    key = json.loads(data)["id"]
    for grid in ("%C2%B2", "%D9%A3", "1e3", "-5"):
        status, _ = request(board, "GET", f"/api/play/boundary?id={key}&grid={grid}", headers={"Host": f"{host}:{port}"})
        assert status == 400, grid


def test_negative_content_length_is_400_and_not_a_second_request(board):
    host, port = board.server_address[:2]
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(f"POST /api/play/create HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: -1\r\n\r\n"
              f"GET /api/runs HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400") and data.count(b"HTTP/1.1 ") == 1, data[:300]


@pytest.mark.parametrize("host", ["evil.example:8765", "attacker.test", ""])
def test_foreign_host_header_is_refused(board, host):
    status, data = request(board, "GET", "/api/runs", headers={"Host": host})
    assert status == 400 and b"Host" in data


def test_own_host_names_are_accepted(board):
    port = board.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, _ = request(board, "GET", "/api/runs", headers={"Host": host})
        assert status == 200, host


def test_board_exits_143_on_sigterm(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "board", tmp_path / "runs", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "serving" in proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143

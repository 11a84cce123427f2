"""The main job: train the iris model, serve it on the embedded backend, and answer the seed's request.

    python examples/iris/demo.py                 # train if needed, serve, ask, print, stop
    python examples/iris/demo.py --keep-serving  # ... and keep serving on port 8080 until Ctrl-C

The request is the seed document's ``predictor.predict([6.4, 3.2, 4.5, 1.5])``, sent by
:class:`tfio_handlers.client.Predictor` to a real ``tfio-handlers serve`` process.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("the server did not become ready in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-serving",
        action="store_true",
        help="leave the server running (port 8080 unless --port)",
    )
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()

    if not (MODEL_DIR / "1" / "saved_model.pb").exists():
        print(f"Training the iris classifier into {MODEL_DIR} ...", flush=True)
        subprocess.run(
            [sys.executable, str(HERE / "train.py"), "--output-dir", str(MODEL_DIR)], check=True
        )
    port = args.port or (8080 if args.keep_serving else free_port())
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "tfio_handlers",
        "serve",
        "--model-dir",
        str(MODEL_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    print("$", " ".join(command), flush=True)
    server = subprocess.Popen(command)
    try:
        wait_ready(url, server)
        from tfio_handlers.client import Predictor

        predictor = Predictor(url)
        data = [6.4, 3.2, 4.5, 1.5]
        result = predictor.predict(data)
        print(f">>> predictor.predict({data})")
        print(json.dumps(result, indent=2))
        classes = result["result"]["classifications"][0]["classes"]
        best = max(classes, key=lambda c: c["score"])
        print(f"most likely class: {best['label']} (score {best['score']:.3f})")
        if args.keep_serving:
            print(
                f"Serving on {url} (Ctrl-C to stop): try\n"
                f"  curl -s {url}/invocations -H 'Content-Type: application/json' "
                "-d '[6.4, 3.2, 4.5, 1.5]'\n"
                f"  curl -s {url}/v1/models/model:predict "
                '-d \'{"signature_name": "predict", "instances": [[6.4, 3.2, 4.5, 1.5]]}\'',
                flush=True,
            )
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

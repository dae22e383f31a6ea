"""The register under uvicorn (one worker) with a variant audit writer process (benchmarks only).

    python -m benchmarks.audit_variant_server PORT

``BENCH_AUDIT_VARIANT`` names the variant (see :mod:`benchmarks.audit_variant_writer`); the
register's settings come from the environment, as for ``careregister serve``.
"""

from __future__ import annotations

import sys

import uvicorn

from register.audit import writer


def main() -> None:
    """Serve on the port given, the writer process replaced by the variant."""
    writer.WRITER_MODULE = "benchmarks.audit_variant_writer"
    uvicorn.run(
        "register.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=1,
        access_log=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()

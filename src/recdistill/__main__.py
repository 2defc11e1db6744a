import os

# before anything imports torch: OpenMP threads sleep instead of spinning while they wait (see cli.main)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recdistill.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())

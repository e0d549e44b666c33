from tsfnode.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process imports it (sealing's pool)
    raise SystemExit(main())

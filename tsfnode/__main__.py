from tsfnode.cli.main import main

raise SystemExit(main())

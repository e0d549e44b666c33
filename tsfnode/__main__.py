from tsfnode.cli import main

raise SystemExit(main())

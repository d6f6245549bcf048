from fsnlab.cli import main

raise SystemExit(main())

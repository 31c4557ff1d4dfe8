from axelsim.cli import main

raise SystemExit(main())

from pyjuicefs.cli.main import main

raise SystemExit(main())

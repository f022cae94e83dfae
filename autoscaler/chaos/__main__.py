"""`python -m autoscaler.chaos [--only NAME ...]`: run the fault suite, print the table."""

from autoscaler.chaos.suite import main

raise SystemExit(main())

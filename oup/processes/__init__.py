"""OGC API Processes: the processes OUP runs."""

"""The warm helper: bin/memccp's thin client (client.py) hands a call to a helper process
of the same user and context (start.py, helper.py), whose forked worker runs it
(worker.py), or runs it in-process. One call from the command line: client.main()."""

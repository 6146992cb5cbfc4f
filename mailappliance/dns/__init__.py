"""DNS for a site: the records it needs (plan), sending them to a server (update), and checking live DNS (check)."""

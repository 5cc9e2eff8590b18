"""ActivityPub over HTTP: signatures, remote actors, the safe fetcher, outbox, delivery, inbox."""

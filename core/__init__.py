"""The engine side: service, routing, engine and runner, store, costs; no chat SDK is imported here."""

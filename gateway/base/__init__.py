"""What every layer of the gateway stands on: configuration, the one error hierarchy,
log events, the database engine and TLS contexts. Imports nothing above it."""

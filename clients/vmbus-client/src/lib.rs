//! Client-side VMBus channel library for client PDs: list offers, open, send and receive, close.

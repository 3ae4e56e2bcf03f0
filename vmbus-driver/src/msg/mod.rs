//! VMBus channel messages: typed values, encoding and decoding of untrusted bytes.

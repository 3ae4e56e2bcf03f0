//! A fixed-capacity FIFO of `Copy` values: the host's queues never allocate.

/// A ring of at most `N` values; `push` hands the value back when full.
#[derive(Debug, Clone)]
pub struct Fifo<T: Copy, const N: usize> {
    items: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Fifo<T, N> {
    /// An empty FIFO whose storage is filled with `fill` (never observed).
    pub const fn new(fill: T) -> Self {
        Self {
            items: [fill; N],
            head: 0,
            len: 0,
        }
    }

    /// Number of queued values.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free places.
    pub const fn room(&self) -> usize {
        N - self.len
    }

    /// Appends at the back, or returns the value when full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.len == N {
            return Err(v);
        }
        self.items[(self.head + self.len) % N] = v;
        self.len += 1;
        Ok(())
    }

    /// Removes the front value.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.items[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(v)
    }

    /// The front value.
    pub fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.items[self.head])
    }

    /// Drops every value.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// The values, front first.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).map(move |i| &self.items[(self.head + i) % N])
    }
}

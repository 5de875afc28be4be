//! A map with a bound, for everything keyed by names the agent chooses (sessions, tasks):
//! past its bound, the entry used least recently is dropped.
//!
//! An agent can make up a new task or session name for every call. Whatever moat keeps in
//! memory per such name lives in one of these, so that memory stays bounded however many
//! names it invents; what must outlive eviction (budgets, loops, breakers) lives in the
//! state database instead.

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// The longest name (of a task, a session, a tool) kept as it is, in bytes.
pub const MAX_NAME: usize = 256;
/// Bytes (at most) of a longer name kept in front of its hash.
const NAME_HEAD: usize = 128;

/// A name as moat keys and records it: itself when at most [`MAX_NAME`] bytes; otherwise
/// its first characters (up to 128 bytes), `…`, and the blake3 hash of the whole. The same long name
/// always gives the same key, so a task's limits hold over it, and two long names that
/// differ give two keys.
pub fn name(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_NAME {
        return Cow::Borrowed(name);
    }
    let mut at = NAME_HEAD;
    while !name.is_char_boundary(at) {
        at -= 1;
    }
    let head = &name[..at];
    Cow::Owned(format!("{head}…{}", blake3::hash(name.as_bytes()).to_hex()))
}

/// At most `max_chars` characters of `text`; a longer text is cut, and says how long it
/// was and its blake3 hash (so that two long texts that differ stay apart).
pub fn preview(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!(
            "{}… ({} bytes, blake3 {})",
            &text[..at],
            text.len(),
            &blake3::hash(text.as_bytes()).to_hex()[..16]
        )),
    }
}

/// A map of at most `bound` entries; inserting one more drops the least recently used.
#[derive(Debug)]
pub struct Bounded<K, V> {
    bound: usize,
    entries: HashMap<K, (V, u64)>,
    /// Keys by last use, least recent first.
    order: BTreeMap<u64, K>,
    tick: u64,
}

impl<K: Clone + Eq + Hash, V> Bounded<K, V> {
    /// At most `bound` entries (at least one).
    pub fn new(bound: usize) -> Bounded<K, V> {
        Bounded { bound: bound.max(1), entries: HashMap::new(), order: BTreeMap::new(), tick: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, which becomes the most recently used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tick = self.next_tick();
        let (value, used) = self.entries.get_mut(key)?;
        if let Some(key) = self.order.remove(used) {
            self.order.insert(tick, key);
        }
        *used = tick;
        Some(value)
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// The value of `key`, made with `make` if there is none (dropping the least recently
    /// used entry if the map is full); it becomes the most recently used.
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        use std::collections::hash_map::Entry;
        let tick = self.next_tick();
        if !self.entries.contains_key(key) && self.entries.len() >= self.bound {
            self.evict();
        }
        match self.entries.entry(key.clone()) {
            Entry::Occupied(entry) => {
                let (value, used) = entry.into_mut();
                if let Some(key) = self.order.remove(used) {
                    self.order.insert(tick, key);
                }
                *used = tick;
                value
            }
            Entry::Vacant(entry) => {
                self.order.insert(tick, key.clone());
                &mut entry.insert((make(), tick)).0
            }
        }
    }

    /// Inserts `key` (most recently used) unless it is there; true if it was not.
    pub fn insert_new(&mut self, key: &K, value: V) -> bool {
        let mut new = false;
        self.get_or_insert_with(key, || {
            new = true;
            value
        });
        new
    }

    /// Puts `key` (most recently used), with `value` if it is new; returns the entry this
    /// dropped to make room, if any.
    pub fn put(&mut self, key: &K, value: V) -> Option<(K, V)> {
        let mut evicted = None;
        if !self.entries.contains_key(key) && self.entries.len() >= self.bound {
            evicted = self.evict();
        }
        self.get_or_insert_with(key, || value);
        evicted
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (value, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(value)
    }

    fn evict(&mut self) -> Option<(K, V)> {
        let (_, oldest) = self.order.pop_first()?;
        let (value, _) = self.entries.remove(&oldest)?;
        Some((oldest, value))
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn past_its_bound_the_least_recently_used_entry_goes() {
        let mut map = Bounded::new(2);
        map.insert_new(&"a", 1);
        map.insert_new(&"b", 2);
        assert_eq!(map.get("a"), Some(&1)); // a is now more recent than b
        map.insert_new(&"c", 3);
        assert!(map.contains("a") && map.contains("c") && !map.contains("b"));
    }

    #[test]
    fn putting_past_the_bound_returns_what_it_dropped() {
        let mut map = Bounded::new(2);
        assert_eq!(map.put(&"a", 1), None);
        assert_eq!(map.put(&"b", 2), None);
        assert_eq!(map.put(&"a", 9), None); // there: refreshed, value kept
        assert_eq!(map.put(&"c", 3), Some(("b", 2)));
        assert_eq!(map.get("a"), Some(&1));
    }

    #[test]
    fn inserting_a_key_that_is_there_keeps_its_value() {
        let mut map = Bounded::new(4);
        assert!(map.insert_new(&"a", 1));
        assert!(!map.insert_new(&"a", 2));
        assert_eq!(map.get("a"), Some(&1));
    }

    #[test]
    fn a_long_name_is_its_head_and_the_hash_of_the_whole() {
        assert_eq!(name("t1"), "t1");
        let long = "é".repeat(1000);
        let key = name(&long);
        assert!(key.len() <= MAX_NAME, "{}", key.len());
        assert!(key.starts_with(&"é".repeat(64)) && !key.starts_with(&"é".repeat(65)));
        assert_eq!(key, name(&long));
        assert_ne!(key, name(&format!("{long}x")));
    }

    #[test]
    fn a_long_text_is_previewed_with_its_length() {
        assert_eq!(preview("short", 10), "short");
        let text = "x".repeat(5000);
        let shown = preview(&text, 200);
        assert!(shown.starts_with(&"x".repeat(200)) && shown.contains("5000 bytes"), "{shown}");
        assert!(shown.len() < 260);
    }

    proptest! {
        #[test]
        fn every_name_key_is_short_and_on_a_character_boundary(text in "\\PC{0,400}") {
            let key = name(&text);
            prop_assert!(key.len() <= MAX_NAME);
            prop_assert_eq!(key == text, text.len() <= MAX_NAME);
        }

        /// Against a model: a list, most recent last, cut to the bound from the front.
        #[test]
        fn it_holds_exactly_the_most_recently_used_keys(
            bound in 1usize..6,
            ops in prop::collection::vec((0u8..3, 0u8..10), 0..200),
        ) {
            let mut map = Bounded::new(bound);
            let mut model: Vec<u8> = Vec::new();
            for (op, key) in ops {
                match op {
                    0 => {
                        map.get_or_insert_with(&key, || key);
                        model.retain(|k| *k != key);
                        model.push(key);
                        if model.len() > bound {
                            model.remove(0);
                        }
                    }
                    1 => {
                        let found = map.get(&key).copied();
                        prop_assert_eq!(found, model.contains(&key).then_some(key));
                        if found.is_some() {
                            model.retain(|k| *k != key);
                            model.push(key);
                        }
                    }
                    _ => {
                        map.remove(&key);
                        model.retain(|k| *k != key);
                    }
                }
                prop_assert!(map.len() <= bound);
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.order.len(), model.len());
                for k in &model {
                    prop_assert!(map.contains(k));
                }
            }
        }
    }
}

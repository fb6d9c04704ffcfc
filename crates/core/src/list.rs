//! [`List`]: a short list stored inline while it holds at most one element.
//!
//! An account's positions and collateral entries are lists that are nearly always empty or one
//! long. A `Vec` keeps even one element in its own heap block, so reading an account's first
//! position is a second, dependent memory access, and a full scan over a million accounts chases
//! a million pointers. A `List` keeps that element inside the account record (one sequential
//! stream for the scan, one cache miss fewer per touched account, one allocation fewer per
//! account) and spills to a `Vec` from the second element on. Everything reads it as a slice.
//!
//! Canonical form (an invariant kept by every method): `Empty` for no element, `One` for one,
//! `Many` for two or more. Equality, ordering of elements and serialization are those of the
//! slice, so a `List` serializes exactly like the `Vec` it replaces.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A list with inline room for one element (see the module docs).
#[derive(Clone)]
pub struct List<T>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    Empty,
    One(T),
    /// Two or more elements.
    Many(Vec<T>),
}

impl<T> List<T> {
    pub const fn new() -> List<T> {
        List(Repr::Empty)
    }

    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(many) => many,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::Empty => &mut [],
            Repr::One(one) => std::slice::from_mut(one),
            Repr::Many(many) => many,
        }
    }

    /// Insert `value` at `index` (elements after it move up), as `Vec::insert`. A spilled list
    /// grows by exactly one slot at a time: lists are short and accounts many.
    ///
    /// # Panics
    /// If `index > len` (as `Vec::insert`; callers pass a position found by a search).
    pub fn insert(&mut self, index: usize, value: T) {
        assert!(index <= self.len(), "insertion index out of range");
        self.0 = match std::mem::replace(&mut self.0, Repr::Empty) {
            Repr::Empty => Repr::One(value),
            Repr::One(one) => {
                let mut many = Vec::with_capacity(2);
                many.push(one);
                many.insert(index, value);
                Repr::Many(many)
            }
            Repr::Many(mut many) => {
                many.reserve_exact(1);
                many.insert(index, value);
                Repr::Many(many)
            }
        };
    }

    /// Append `value`.
    pub fn push(&mut self, value: T) {
        self.insert(self.len(), value);
    }

    /// Remove and return the element at `index`, as `Vec::remove`; a list left with one element
    /// moves it back inline.
    ///
    /// # Panics
    /// If `index >= len` (as `Vec::remove`).
    pub fn remove(&mut self, index: usize) -> T {
        assert!(index < self.len(), "removal index out of range");
        let (removed, rest) = match std::mem::replace(&mut self.0, Repr::Empty) {
            Repr::Empty => unreachable!("index checked above"),
            Repr::One(one) => (one, Repr::Empty),
            Repr::Many(mut many) => {
                let removed = many.remove(index);
                let rest = match many.len() {
                    1 => Repr::One(many.pop().expect("one element left")),
                    _ => Repr::Many(many),
                };
                (removed, rest)
            }
        };
        self.0 = rest;
        removed
    }

    /// Keep only the elements for which `keep` holds, in order, as `Vec::retain`.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        let mut all = match std::mem::replace(&mut self.0, Repr::Empty) {
            Repr::Empty => return,
            Repr::One(one) => vec![one],
            Repr::Many(many) => many,
        };
        all.retain(keep);
        *self = List::from(all);
    }

    /// Bytes this list holds outside its owner (a spilled list's heap block, by capacity).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Many(many) => many.capacity() * std::mem::size_of::<T>(),
            _ => 0,
        }
    }

    /// The spilled list's heap block, if any (for code that fetches blocks ahead of use).
    pub fn spilled(&self) -> Option<&[T]> {
        match &self.0 {
            Repr::Many(many) => Some(many),
            _ => None,
        }
    }
}

impl<T> Default for List<T> {
    fn default() -> List<T> {
        List::new()
    }
}

impl<T> std::ops::Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::ops::DerefMut for List<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<'a, T> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(mut many: Vec<T>) -> List<T> {
        List(match many.len() {
            0 => Repr::Empty,
            1 => Repr::One(many.pop().expect("one element")),
            _ => {
                many.shrink_to_fit();
                Repr::Many(many)
            }
        })
    }
}

impl<T> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> List<T> {
        List::from(iter.into_iter().collect::<Vec<T>>())
    }
}

impl<T: PartialEq> PartialEq for List<T> {
    fn eq(&self, other: &List<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for List<T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<List<T>, D::Error> {
        Vec::<T>::deserialize(deserializer).map(List::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_canonical(list: &List<u32>) -> bool {
        match &list.0 {
            Repr::Empty => true,
            Repr::One(_) => true,
            Repr::Many(many) => many.len() >= 2,
        }
    }

    /// Random inserts and removals agree with a `Vec` and keep the canonical form.
    #[test]
    fn behaves_like_a_vec_and_stays_canonical() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut list, mut vec) = (List::new(), Vec::new());
        for round in 0..20_000u32 {
            if vec.is_empty() || next() % 3 != 0 {
                let at = (next() % (vec.len() as u64 + 1)) as usize;
                list.insert(at, round);
                vec.insert(at, round);
            } else {
                let at = (next() % vec.len() as u64) as usize;
                assert_eq!(list.remove(at), vec.remove(at));
            }
            if next() % 17 == 0 {
                let parity = next() % 2;
                list.retain(|x| u64::from(*x) % 2 == parity);
                vec.retain(|x| u64::from(*x) % 2 == parity);
            }
            if vec.len() > 4 {
                while vec.len() > 1 {
                    assert_eq!(list.remove(0), vec.remove(0));
                }
            }
            assert_eq!(list.as_slice(), vec.as_slice());
            assert!(is_canonical(&list), "round {round}");
            assert_eq!(list.heap_bytes() > 0, vec.len() >= 2);
        }
    }

    #[test]
    fn serializes_like_a_vec() {
        for vec in [vec![], vec![7u32], vec![1, 2, 3]] {
            let list = List::from(vec.clone());
            assert_eq!(serde_json::to_string(&list).unwrap(), serde_json::to_string(&vec).unwrap());
            let back: List<u32> = serde_json::from_str(&serde_json::to_string(&vec).unwrap()).unwrap();
            assert_eq!(back, list);
            assert!(is_canonical(&back));
            assert_eq!(format!("{list:?}"), format!("{vec:?}"));
        }
    }
}

//! Indexers for labels that are strings, such as the queries of query autocompletion (PECOS's
//! qp2q, Yadav et al. KDD 2021): the label tree follows the labels' prefixes.
//!
//! * [`TrieIndexer`]: the character trie, cut at `depth` levels. Level `d` has one node per
//!   distinct `key_d(label)`: the label's first `d` characters, or, for a shorter label, the label
//!   followed by end markers that sort before every character. So a label that ends at an inner
//!   node gets a branch of its own (PECOS's dummy child), a path shorter than `depth` goes on
//!   through single-child nodes, and everything below `depth` is one leaf cluster.
//! * [`HybridIndexer`]: the trie's top `trie_depth` levels, then under each level-`trie_depth`
//!   node the balanced 2-means tree of its labels' embeddings.
//!
//! Labels must be sorted (code point order, as Python's `sorted`) and unique. Then the keys of a
//! level come in label order, nodes are numbered in that order, and every node covers a
//! contiguous range of label ids. Two distinct labels with end markers appended first differ
//! where their common prefix ends, so label `i` starts a new node at level `d` exactly when it
//! shares fewer than `d` leading characters with label `i - 1`: the whole trie follows from these
//! shared prefix lengths, counted in `char`s.
//!
//! Owns the label checks and the trie; uses the 2-means indexer ([`HierarchicalKMeans`]) for the
//! hybrid's sub-trees, each over its node's rows of the embeddings ([`crate::sparse::RowBlock`]).

use super::chain::ClusterChain;
use super::kmeans::{node_seed, HierarchicalKMeans};
use super::Indexer;
use crate::error::{PecosError, Result, StopFlag};
use crate::params::Params;
use crate::sparse::CsrView;
use rayon::prelude::*;
use std::iter::{once, repeat_n};

/// The character trie over sorted, unique label strings, cut at `depth` levels (see the module
/// documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct TrieIndexer {
    /// Levels of trie nodes between the root and the labels.
    pub depth: usize,
}

impl Default for TrieIndexer {
    fn default() -> Self {
        TrieIndexer { depth: 16 }
    }
}

impl TrieIndexer {
    /// Reads `depth` (at least 1).
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] if it is invalid.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(TrieIndexer {
            depth: p.count("depth", 1)?,
        })
    }
}

impl Indexer for TrieIndexer {
    type Labels<'a> = [&'a str];

    /// The chain of `depth + 1` layers: the level-1 nodes under the root, ..., each label under
    /// its level-`depth` node.
    fn build(&self, labels: &[&str], stop: &StopFlag) -> Result<ClusterChain> {
        let shared = shared_prefixes(labels, self.depth)?;
        ClusterChain::try_new(trie_layers(&shared, 0..=self.depth, stop)?)
    }
}

/// The trie's top `trie_depth` levels, then under each level-`trie_depth` node the balanced
/// 2-means tree ([`HierarchicalKMeans`]) of its labels' embeddings.
#[derive(Clone, Debug, PartialEq)]
pub struct HybridIndexer {
    /// Trie levels above the k-means sub-trees (1 to 3 in the paper).
    pub trie_depth: usize,
    /// The tree grown under each trie node, over the node's labels alone; each node seeds it
    /// with a seed of its own, derived from `kmeans.seed` and the node's position.
    pub kmeans: HierarchicalKMeans,
}

impl Default for HybridIndexer {
    fn default() -> Self {
        HybridIndexer {
            trie_depth: 2,
            kmeans: HierarchicalKMeans {
                n_splits: 2,
                min_codes: 2,
                ..HierarchicalKMeans::default()
            },
        }
    }
}

impl HybridIndexer {
    /// Reads `trie_depth` (at least 1), then `n_splits`, `max_leaf_size`, `kmeans_max_iter`,
    /// `spherical` and `random_state` as [`HierarchicalKMeans::from_params`] does; a sub-tree's
    /// top layer has at most `n_splits` nodes.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(HybridIndexer {
            trie_depth: p.count("trie_depth", 1)?,
            kmeans: HierarchicalKMeans::from_split_params(p)?,
        })
    }
}

/// Label strings with their embeddings: what the hybrid indexer reads.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedLabels<'a> {
    /// Sorted and unique.
    pub strings: &'a [&'a str],
    /// Row `i` embeds label `i`.
    pub embeddings: CsrView<'a>,
}

impl Indexer for HybridIndexer {
    type Labels<'a> = EmbeddedLabels<'a>;

    /// The chain of `trie_depth` trie layers, then as many layers as the deepest sub-tree has.
    /// The leaves of shallower sub-trees reach their labels through chains of single children,
    /// so that every label sits at the same depth. The sub-trees are grown in parallel; the
    /// chain is the same for every thread count.
    fn build(&self, labels: &EmbeddedLabels<'_>, stop: &StopFlag) -> Result<ClusterChain> {
        let (strings, z) = (labels.strings, labels.embeddings);
        let depth = self.trie_depth;
        let shared = shared_prefixes(strings, depth)?;
        if z.n_rows() != strings.len() {
            return Err(PecosError::shape(
                "embedding rows (one per label)",
                strings.len(),
                z.n_rows(),
            ));
        }
        let mut layers = trie_layers(&shared, 0..depth, stop)?;
        // Where the labels of each level-`depth` node start, and the end of the last.
        let starts: Vec<usize> = once(0)
            .chain((1..strings.len()).filter(|&i| shared[i - 1] < depth))
            .chain(once(strings.len()))
            .collect();
        let subtrees = starts
            .par_windows(2)
            .enumerate()
            .map(|(node, range)| {
                stop.check()?;
                let kmeans = HierarchicalKMeans {
                    seed: node_seed(self.kmeans.seed, depth, node),
                    ..self.kmeans
                };
                let rows = z.row_block(range[0]..range[1]);
                let chain = kmeans.build(&rows.view(), stop)?;
                Ok(chain
                    .layers()
                    .iter()
                    .map(|layer| layer.parent_of().to_vec())
                    .collect())
            })
            .collect::<Result<Vec<_>>>()?;
        layers.extend(join_subtrees(subtrees)?);
        ClusterChain::try_new(layers)
    }
}

/// How many leading characters each label after the first shares with the label before it, at
/// most `cap` (the deepest level that needs it).
///
/// # Errors
/// [`PecosError::InvalidInput`] if there are no labels, more than `u32::MAX`, or they are not
/// sorted and unique.
fn shared_prefixes(labels: &[&str], cap: usize) -> Result<Vec<usize>> {
    if labels.is_empty() {
        return Err(PecosError::InvalidInput(
            "there must be at least one label".into(),
        ));
    }
    if labels.len() > u32::MAX as usize {
        return Err(PecosError::InvalidInput(format!(
            "at most {} labels are supported, got {}",
            u32::MAX,
            labels.len()
        )));
    }
    labels
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let (before, label) = (pair[0], pair[1]);
            if label <= before {
                return Err(PecosError::InvalidInput(format!(
                    "labels must be sorted and unique: label {} ('{}') is not after label {i} ('{}')",
                    i + 1,
                    label.escape_debug(),
                    before.escape_debug()
                )));
            }
            Ok(before
                .chars()
                .zip(label.chars())
                .take(cap)
                .take_while(|(a, b)| a == b)
                .count())
        })
        .collect()
}

/// The trie layers under the nodes of each of `parent_levels` (level 0 is the root); `stop` is
/// checked between layers.
fn trie_layers(
    shared: &[usize],
    parent_levels: impl Iterator<Item = usize>,
    stop: &StopFlag,
) -> Result<Vec<Vec<u32>>> {
    parent_levels
        .map(|level| {
            stop.check()?;
            Ok(layer_under(shared, level))
        })
        .collect()
}

/// The parent (at `level`) of every node of level `level + 1`. With `shared` capped at `level`,
/// the nodes of level `level + 1` are the labels themselves.
fn layer_under(shared: &[usize], level: usize) -> Vec<u32> {
    // The first label starts a node at every level.
    let mut parents = vec![0];
    let mut parent = 0;
    for &s in shared {
        if s < level {
            parent += 1;
        }
        if s <= level {
            parents.push(parent);
        }
    }
    parents
}

/// The layers below a level, made of the trees hanging from its nodes in order: tree `k` (its
/// parent arrays, top layer first, the one of its labels last) hangs from node `k` and its nodes
/// are numbered after those of the trees before it. Trees shallower than the deepest are padded
/// by [`pad_to_depth`] first.
///
/// # Errors
/// [`PecosError::InvalidInput`] if a layer would have more than `u32::MAX` parents.
fn join_subtrees(subtrees: Vec<Vec<Vec<u32>>>) -> Result<Vec<Vec<u32>>> {
    let depth = subtrees.iter().map(Vec::len).max().unwrap_or(0);
    let mut layers = vec![Vec::new(); depth];
    let too_many = || {
        PecosError::InvalidInput("the label tree would have more than 2^32 nodes in a layer".into())
    };
    for (node, subtree) in subtrees.into_iter().enumerate() {
        // The tree's top layer hangs from node `node`; each layer below it hangs from the tree's
        // own nodes of the layer above, numbered after those the joined layer held before.
        let mut first_parent = node;
        for (layer, joined) in pad_to_depth(subtree, depth).iter().zip(&mut layers) {
            let offset = u32::try_from(first_parent).map_err(|_| too_many())?;
            first_parent = joined.len();
            for &parent in layer {
                joined.push(parent.checked_add(offset).ok_or_else(too_many)?);
            }
        }
    }
    Ok(layers)
}

/// A tree (parent arrays, the labels' layer last) extended to `depth` layers by chains of single
/// children between its leaves and their labels, as PECOS pads: each label keeps its leaf.
fn pad_to_depth(mut tree: Vec<Vec<u32>>, depth: usize) -> Vec<Vec<u32>> {
    let labels_layer = tree.len() - 1;
    let n_leaves = match labels_layer {
        0 => 1,
        _ => tree[labels_layer - 1].len(),
    };
    let single_children: Vec<u32> = (0..n_leaves as u32).collect();
    let n_missing = depth.saturating_sub(tree.len());
    tree.splice(
        labels_layer..labels_layer,
        repeat_n(single_children, n_missing),
    );
    tree
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    fn trie(labels: &[&str], depth: usize) -> Result<Vec<Vec<u32>>> {
        let chain = TrieIndexer { depth }.build(labels, &StopFlag::default())?;
        Ok(chain
            .layers()
            .iter()
            .map(|l| l.parent_of().to_vec())
            .collect())
    }

    #[test]
    fn trie_levels_follow_the_prefixes() {
        // Level 1: "", "a", "b"; level 2: "", "a" + end, "ab", "ac", "b" + end;
        // level 3: one node per label.
        let labels = ["", "a", "ab", "abc", "ac", "b"];
        assert_eq!(
            trie(&labels, 3).unwrap(),
            vec![
                vec![0, 0, 0],
                vec![0, 1, 1, 1, 2],
                vec![0, 1, 2, 2, 3, 4],
                vec![0, 1, 2, 3, 4, 5],
            ]
        );
        // Below depth 1, the labels of a letter form one leaf.
        assert_eq!(
            trie(&labels, 1).unwrap(),
            vec![vec![0, 0, 0], vec![0, 1, 1, 1, 1, 2]]
        );
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        // "é" and "ê" share their first UTF-8 byte but no character.
        let labels = ["aé", "aêx", "aêy"];
        assert_eq!(
            trie(&labels, 2).unwrap(),
            vec![vec![0], vec![0, 0], vec![0, 1, 1]]
        );
        assert_eq!(trie(&["日本", "日本語"], 3).unwrap()[3], vec![0, 1]);
    }

    #[test]
    fn labels_must_be_sorted_unique_and_present() {
        let message = |labels: &[&str]| trie(labels, 2).unwrap_err().to_string();
        assert_eq!(
            message(&["a", "b", "b"]),
            "invalid input: labels must be sorted and unique: label 2 ('b') is not after label 1 ('b')"
        );
        assert!(message(&["b", "a"]).contains("label 1 ('a') is not after label 0 ('b')"));
        // Code point order: "Z" (U+5A) before "a" (U+61) before "é" (U+E9).
        assert!(trie(&["Z", "a", "é"], 2).is_ok());
        assert!(message(&[]).contains("at least one label"));
    }

    #[test]
    fn parameters_are_read_and_checked() {
        let params = |entries: &[(&str, i128)]| {
            Params::new(
                entries
                    .iter()
                    .map(|&(k, v)| (k.to_string(), crate::params::Value::Int(v))),
            )
        };
        let mut p = params(&[("depth", 0)]);
        assert_eq!(
            TrieIndexer::from_params(&mut p).unwrap_err().to_string(),
            "depth must be an integer >= 1, got 0"
        );
        let mut p = params(&[
            ("trie_depth", 3),
            ("n_splits", 4),
            ("max_leaf_size", 10),
            ("kmeans_max_iter", 5),
            ("random_state", 7),
        ]);
        // `spherical` is missing.
        assert!(HybridIndexer::from_params(&mut p).is_err());
        let mut p = params(&[("trie_depth", 1), ("n_splits", 3)]);
        assert!(HybridIndexer::from_params(&mut p)
            .unwrap_err()
            .to_string()
            .starts_with("n_splits must be a power of 2"));
    }

    /// Labels "a0".."a{n_a - 1}" and "b0".."b{n_b - 1}" (sorted as strings) with 2-D embeddings.
    fn two_letters(n_a: usize, n_b: usize) -> (Vec<String>, CsrMatrix) {
        let mut labels: Vec<String> = (0..n_a)
            .map(|i| format!("a{i:03}"))
            .chain((0..n_b).map(|i| format!("b{i:03}")))
            .collect();
        labels.sort();
        let rows: Vec<Vec<(usize, f32)>> = (0..labels.len())
            .map(|i| vec![(0, 1.0 + (i % 7) as f32), (1, 1.0 + (i % 5) as f32)])
            .collect();
        (labels, CsrMatrix::from_rows(2, &rows).unwrap())
    }

    fn hybrid(indexer: &HybridIndexer, labels: &[String], z: &CsrMatrix) -> Result<ClusterChain> {
        let strings: Vec<&str> = labels.iter().map(String::as_str).collect();
        let input = EmbeddedLabels {
            strings: &strings,
            embeddings: z.view(),
        };
        indexer.build(&input, &StopFlag::default())
    }

    #[test]
    fn hybrid_hangs_a_kmeans_tree_under_each_trie_node() {
        // "a": 40 labels, split into 4 leaves of 10; "b": 8 labels, one leaf, padded.
        let (labels, z) = two_letters(40, 8);
        let mut indexer = HybridIndexer {
            trie_depth: 1,
            ..HybridIndexer::default()
        };
        indexer.kmeans.max_leaf_size = 10;
        let chain = hybrid(&indexer, &labels, &z).unwrap();
        let sizes: Vec<usize> = chain.layers().iter().map(|l| l.n_children()).collect();
        assert_eq!(sizes, vec![2, 3, 5, 48]);
        assert_eq!(chain.layers()[1].parent_of(), &[0, 0, 1]);
        assert_eq!(chain.layers()[2].parent_of(), &[0, 0, 1, 1, 2]);
        let leaves = chain.layers()[3].parent_of();
        assert!(leaves[..40].iter().all(|&leaf| leaf < 4));
        assert!(leaves[40..].iter().all(|&leaf| leaf == 4));
        // A large max_leaf_size leaves the trie alone.
        indexer.kmeans.max_leaf_size = 100;
        let strings: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(
            hybrid(&indexer, &labels, &z).unwrap(),
            TrieIndexer { depth: 1 }
                .build(&strings, &StopFlag::default())
                .unwrap()
        );
    }

    #[test]
    fn hybrid_is_the_same_for_any_thread_count_and_checks_its_input() {
        let (labels, z) = two_letters(300, 200);
        let mut indexer = HybridIndexer::default();
        indexer.kmeans.max_leaf_size = 7;
        indexer.trie_depth = 2;
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| hybrid(&indexer, &labels, &z).unwrap())
        };
        assert_eq!(run(1), run(3));
        let short = CsrMatrix::from_rows(2, &[vec![(0, 1.0)]]).unwrap();
        assert!(matches!(
            hybrid(&indexer, &labels, &short),
            Err(PecosError::ShapeMismatch { .. })
        ));
        let stop = StopFlag::default();
        stop.raise();
        let strings: Vec<&str> = labels.iter().map(String::as_str).collect();
        let input = EmbeddedLabels {
            strings: &strings,
            embeddings: z.view(),
        };
        assert!(matches!(
            indexer.build(&input, &stop),
            Err(PecosError::Interrupted)
        ));
    }

    #[test]
    fn shallow_trees_are_padded_at_their_leaves() {
        let joined = join_subtrees(vec![
            vec![vec![0, 0], vec![0, 1], vec![0, 0, 1]],
            // Two labels right under the node: a leaf of its own two levels down.
            vec![vec![0, 0]],
            // Two leaves, each getting a single child.
            vec![vec![0, 0], vec![0, 1, 1]],
        ])
        .unwrap();
        assert_eq!(
            joined,
            vec![
                vec![0, 0, 1, 2, 2],
                vec![0, 1, 2, 3, 4],
                vec![0, 0, 1, 2, 2, 3, 4, 4],
            ]
        );
    }
}

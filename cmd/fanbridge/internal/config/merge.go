package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// pair is a key of a mapping and its value.
type pair struct{ key, val *yaml.Node }

// isMergeKey reports whether k is YAML's merge key: << written plain, which yaml.v3 tags
// !!merge. A quoted "<<" is an ordinary key.
func isMergeKey(k *yaml.Node) bool { return k.Kind == yaml.ScalarNode && k.Tag == "!!merge" }

// pairs returns the keys and values of the mapping n with its YAML merge keys carried out, as
// YAML 1.1 defines them: yaml.v3 leaves them in the node tree it returns, where they would read
// as a key named "<<". `<<: *m` puts the keys of the mapping m where the << stands, except
// those n writes itself, which win; of the mappings in `<<: [*a, *b]`, an earlier one wins over
// a later one; a merged mapping's own merge keys are carried out first. Only a mapping, or a
// list of mappings, may be merged. The keys n writes are returned as they are, a repeated one
// included, for the caller to refuse. Each merge source visited and each merged key count
// against the node budget, and each mapping is merged once, its keys kept for the next merge of
// it: without both, mappings that merge another many times over, empty ones included, or long
// chains of merges, would take time without end. It reports a problem under path and returns
// false.
func (d *decoder) pairs(n *yaml.Node, path string) ([]pair, bool) {
	return d.mergedPairs(n, path, false)
}

// merged is what merging a mapping gave: its keys, or a problem reported already.
type merged struct {
	pairs []pair
	ok    bool
}

// mergedPairs is pairs for n; nested is true when n is merged into another mapping, whose
// caller sees only the keys of n that are merged, so a repeated key of n is refused here.
func (d *decoder) mergedPairs(n *yaml.Node, path string, nested bool) ([]pair, bool) {
	written := map[string]bool{}
	hasMerge := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case isMergeKey(k) && hasMerge:
			d.fail(mapKeyPath(path, "<<"), k, "key given twice (merge several mappings with one: <<: [*a, *b])")
			return nil, false
		case isMergeKey(k):
			hasMerge = true
		case k.Kind != yaml.ScalarNode:
		case written[k.Value] && nested:
			d.fail(mapKeyPath(path, k.Value), k, "key given twice")
			return nil, false
		default:
			written[k.Value] = true
		}
	}
	out := make([]pair, 0, len(n.Content)/2)
	if !hasMerge {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, pair{n.Content[i], n.Content[i+1]})
		}
		return out, true
	}
	if d.merging == nil {
		d.merging = map[*yaml.Node]bool{}
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	mp := mapKeyPath(path, "<<")
	taken := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			out = append(out, pair{k, v})
			continue
		}
		sources, ok := d.mergeSources(v, mp)
		if !ok {
			return nil, false
		}
		for _, m := range sources {
			if !d.spend(mp, m) {
				return nil, false
			}
			if d.merging[m] {
				d.fail(mp, k, "merges a mapping that holds this merge key: a mapping may not be merged into itself")
				return nil, false
			}
			inner, ok := d.mergeOf(m, mp)
			if !ok {
				return nil, false
			}
			for _, p := range inner {
				if !d.spend(mp, p.key) {
					return nil, false
				}
				if p.key.Kind == yaml.ScalarNode {
					if written[p.key.Value] || taken[p.key.Value] {
						continue
					}
					taken[p.key.Value] = true
				}
				out = append(out, p)
			}
		}
	}
	return out, true
}

// mergeOf returns the keys of the mapping m as merged into another, merging m only the first
// time it is asked for.
func (d *decoder) mergeOf(m *yaml.Node, path string) ([]pair, bool) {
	if r, ok := d.mergedOf[m]; ok {
		return r.pairs, r.ok
	}
	pairs, ok := d.mergedPairs(m, path, true)
	if d.mergedOf == nil {
		d.mergedOf = map[*yaml.Node]merged{}
	}
	d.mergedOf[m] = merged{pairs, ok}
	return pairs, ok
}

// mergeSources returns the mappings the value v of a merge key at path names, earliest first:
// v itself, or the elements of the list v, aliases followed.
func (d *decoder) mergeSources(v *yaml.Node, path string) ([]*yaml.Node, bool) {
	resolve := func(n *yaml.Node) *yaml.Node {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		return n
	}
	v = resolve(v)
	if d.badTag(path, v) {
		return nil, false
	}
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}, true
	case yaml.SequenceNode:
		out := make([]*yaml.Node, 0, len(v.Content))
		for i, c := range v.Content {
			c = resolve(c)
			if d.badTag(fmt.Sprintf("%s[%d]", path, i), c) {
				return nil, false
			}
			if c.Kind != yaml.MappingNode {
				d.fail(fmt.Sprintf("%s[%d]", path, i), c, "only a mapping may be merged, got %s", kindName(c))
				return nil, false
			}
			out = append(out, c)
		}
		return out, true
	}
	d.fail(path, v, "only a mapping, or a list of mappings, may be merged, got %s", kindName(v))
	return nil, false
}

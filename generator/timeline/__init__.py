"""The live timeline: the plan of generated windows against host beats, crossfades at changes, the tempo lock that
puts generated beats on the host grid, and the offline replay of a performance."""

package grpcsink

// RefusedSizes exports refusedSizes to the fuzz test.
var RefusedSizes = refusedSizes

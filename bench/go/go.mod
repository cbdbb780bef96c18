module ringo/bench/go

go 1.19

module goreact

go 1.24

module example.com/hello-tinygo

go 1.21

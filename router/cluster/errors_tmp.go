package cluster

import "errors"

var ErrMetaTooLarge = errors.New("cluster: node metadata too large")

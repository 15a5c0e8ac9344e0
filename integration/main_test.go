package integration

import (
	"testing"

	"github.com/vecino/vecino/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m) }

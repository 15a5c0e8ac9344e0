package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descPeers    = prometheus.NewDesc("vecino_peers", "Connected libp2p peers.", nil, nil)
	descDHT      = prometheus.NewDesc("vecino_dht_routing_table_peers", "Peers in a DHT's routing table (dht: wan, the public IPFS DHT; lan, private networks).", []string{"dht"}, nil)
	descConfig   = prometheus.NewDesc("vecino_config_last_good", "1 when the configuration file was refused and the last good copy runs.", nil, nil)
	descUp       = prometheus.NewDesc("vecino_plugin_up", "1 when the plugin is running.", []string{"plugin"}, nil)
	descRestarts = prometheus.NewDesc("vecino_plugin_restarts_total", "Times the supervisor restarted the plugin.", []string{"plugin"}, nil)
	descBytes    = prometheus.NewDesc("vecino_plugin_stream_bytes_total", "Stream bytes a plugin moved through the router.", []string{"plugin", "direction"}, nil)
	descStreams  = prometheus.NewDesc("vecino_plugin_streams_total", "Streams a plugin opened or accepted.", []string{"plugin", "direction"}, nil)
	descMessages = prometheus.NewDesc("vecino_plugin_pubsub_messages_total", "Pubsub messages a plugin received or published.", []string{"plugin", "direction"}, nil)
	descRefused  = prometheus.NewDesc("vecino_plugin_refused_total", "Host calls refused for going beyond what the plugin declared.", []string{"plugin"}, nil)
	descValidate = prometheus.NewDesc("vecino_plugin_pubsub_validation_seconds_total", "Time pubsub messages waited for the plugin's verdict. Gossipsub validates one message at a time: a rate near 1 means that worker is always busy, and messages queue for it.", []string{"plugin"}, nil)
)

// collector reads the node's figures when Prometheus scrapes.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descDHT, descConfig, descUp, descRestarts, descBytes, descStreams, descMessages, descRefused, descValidate} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descPeers, float64(len(s.Node.Host.Network().Peers())))
	for name, n := range s.Node.DHTPeers() {
		gauge(descDHT, float64(n), name)
	}
	lastGood := 0.0
	if s.configState().UsingLastGood {
		lastGood = 1
	}
	gauge(descConfig, lastGood)
	for _, p := range s.Plugins.Plugins() {
		snap := p.Snapshot()
		up := 0.0
		if snap.State == "running" {
			up = 1
		}
		gauge(descUp, up, snap.Name)
		count(descRestarts, uint64(snap.Restarts), snap.Name)
		if k := s.Counters[snap.Name]; k != nil {
			count(descBytes, k.BytesIn.Load(), snap.Name, "in")
			count(descBytes, k.BytesOut.Load(), snap.Name, "out")
			count(descStreams, k.StreamsIn.Load(), snap.Name, "in")
			count(descStreams, k.StreamsOut.Load(), snap.Name, "out")
			count(descMessages, k.MessagesIn.Load(), snap.Name, "in")
			count(descMessages, k.MessagesOut.Load(), snap.Name, "out")
			count(descRefused, k.Refused.Load(), snap.Name)
			ch <- prometheus.MustNewConstMetric(descValidate, prometheus.CounterValue, float64(k.Validating.Load())/1e9, snap.Name)
		}
	}
}

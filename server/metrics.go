package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics live on a private registry: nothing global, nothing from other
// libraries leaks in.
type metrics struct {
	// children caches resolved label sets: resolving labels hashes and
	// locks on every call, and the read path is hot.
	children sync.Map // childKey → *child
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec
	uploads  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixrepo_http_requests_total", Help: "HTTP requests by object kind, method and status code.",
		}, []string{"route", "method", "code"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixrepo_http_response_bytes_total", Help: "Response body bytes sent, by object kind.",
		}, []string{"route"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixrepo_http_upload_bytes_total", Help: "Upload body bytes received, by object kind.",
		}, []string{"route"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixrepo_uploads_total", Help: "Uploads by object kind and outcome (accepted, present, refused, denied, failed).",
		}, []string{"route", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nixrepo_http_request_duration_seconds", Help: "Request latency by object kind and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.bytesOut, m.bytesIn, m.uploads, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

type childKey struct {
	k      kind
	method string
	code   int
}

type child struct {
	requests prometheus.Counter
	latency  prometheus.Observer
	bytesOut prometheus.Counter
}

func (m *metrics) observe(k kind, method string, code int, bytes int64, d time.Duration) {
	if code == 0 {
		code = http.StatusOK
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		method = "other" // client input must not create series
	}
	key := childKey{k, method, code}
	c, ok := m.children.Load(key)
	if !ok {
		route := k.String()
		c, _ = m.children.LoadOrStore(key, &child{
			requests: m.requests.WithLabelValues(route, method, strconv.Itoa(code)),
			latency:  m.latency.WithLabelValues(route, method),
			bytesOut: m.bytesOut.WithLabelValues(route),
		})
	}
	ch := c.(*child)
	ch.requests.Inc()
	ch.latency.Observe(d.Seconds())
	if bytes > 0 {
		ch.bytesOut.Add(float64(bytes))
	}
}

func (m *metrics) upload(k kind, outcome string) {
	m.uploads.WithLabelValues(k.String(), outcome).Inc()
}

// uploadSlots publishes the admission's slots in use and waiting uploads.
func (m *metrics) uploadSlots(counts func() (active, waiting int)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nixrepo_uploads_active", Help: "Uploads holding an upload slot."},
			func() float64 { a, _ := counts(); return float64(a) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nixrepo_uploads_waiting", Help: "Uploads waiting for an upload slot."},
			func() float64 { _, w := counts(); return float64(w) }))
}

func (m *metrics) received(k kind, n int64) {
	if n > 0 {
		m.bytesIn.WithLabelValues(k.String()).Add(float64(n))
	}
}

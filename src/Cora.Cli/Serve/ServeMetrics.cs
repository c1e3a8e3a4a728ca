using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Cora.Cli;

/// <summary>
/// The service's Prometheus metrics (text exposition format 0.0.4, at GET /metrics): requests by route and status, latency
/// histograms by route, merged batch sizes, the queue depth, CF fallbacks, abandoned work, rows scored, model loads and the served
/// model's identity. Lock-free counters; a scrape renders them.
/// </summary>
internal sealed class ServeMetrics
{
    private static readonly double[] LatencyBuckets = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
    private static readonly double[] BatchBuckets = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };

    private sealed class Histogram(double[] bounds)
    {
        public readonly double[] Bounds = bounds;
        public readonly long[] Counts = new long[bounds.Length + 1];
        private long _sumMicros;
        public void Observe(double v)
        {
            int i = Array.FindIndex(Bounds, b => v <= b);
            Interlocked.Increment(ref Counts[i < 0 ? Bounds.Length : i]);
            Interlocked.Add(ref _sumMicros, (long)(v * 1e6));
        }
        public double Sum => Interlocked.Read(ref _sumMicros) / 1e6;
    }

    private readonly ConcurrentDictionary<(string Route, int Status), long[]> _requests = new();
    private readonly ConcurrentDictionary<string, Histogram> _latency = new();
    private readonly Histogram _batchRows = new(BatchBuckets);
    private long _cfFallbacks, _reloads, _reloadFailures;
    private double _loadSeconds;

    public void Request(string route, int status, double seconds)
    {
        Interlocked.Increment(ref _requests.GetOrAdd((route, status), _ => new long[1])[0]);
        _latency.GetOrAdd(route, _ => new Histogram(LatencyBuckets)).Observe(seconds);
    }

    public void Batch(int rows) => _batchRows.Observe(rows);
    public void CfFallback() => Interlocked.Increment(ref _cfFallbacks);
    public void Loaded(double seconds) { Volatile.Write(ref _loadSeconds, seconds); }
    public void Reloaded(bool ok) => Interlocked.Increment(ref ok ? ref _reloads : ref _reloadFailures);

    /// <summary>The exposition text; <paramref name="served"/> gives the live model's gauges.</summary>
    public string Render(ServedModel.Snapshot served)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        string L(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
        void Head(string name, string type, string help) => sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        void Hist(string name, string labels, Histogram h)
        {
            long cumulative = 0;
            for (int i = 0; i < h.Bounds.Length; i++)
            {
                cumulative += Interlocked.Read(ref h.Counts[i]);
                sb.Append(name).Append("_bucket{").Append(labels).Append(labels.Length > 0 ? "," : "").Append("le=\"").Append(F(h.Bounds[i])).Append("\"} ").Append(cumulative).Append('\n');
            }
            cumulative += Interlocked.Read(ref h.Counts[^1]);
            sb.Append(name).Append("_bucket{").Append(labels).Append(labels.Length > 0 ? "," : "").Append("le=\"+Inf\"} ").Append(cumulative).Append('\n');
            sb.Append(name).Append("_sum").Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(F(h.Sum)).Append('\n');
            sb.Append(name).Append("_count").Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(cumulative).Append('\n');
        }

        Head("cora_requests_total", "counter", "HTTP requests answered, by route and status.");
        foreach (var ((route, status), n) in _requests.OrderBy(k => k.Key.Route, StringComparer.Ordinal).ThenBy(k => k.Key.Status))
            sb.Append($"cora_requests_total{{route=\"{L(route)}\",status=\"{status}\"}} {Interlocked.Read(ref n[0])}\n");
        Head("cora_request_duration_seconds", "histogram", "Time from request to response, by route.");
        foreach (var (route, h) in _latency.OrderBy(k => k.Key, StringComparer.Ordinal)) Hist("cora_request_duration_seconds", $"route=\"{L(route)}\"", h);
        Head("cora_batch_rows", "histogram", "Rows per merged model call.");
        Hist("cora_batch_rows", "", _batchRows);
        var b = served.Batcher;
        Head("cora_queue_depth", "gauge", "Requests waiting for the model.");
        sb.Append("cora_queue_depth ").Append(b.Pending).Append('\n');
        Head("cora_rows_scored_total", "counter", "Rows scored by the model.");
        sb.Append("cora_rows_scored_total ").Append(Interlocked.Read(ref b.Rows)).Append('\n');
        Head("cora_abandoned_total", "counter", "Requests whose model work was dropped or stopped after their deadline passed or their client left.");
        sb.Append("cora_abandoned_total ").Append(Interlocked.Read(ref b.Abandoned)).Append('\n');
        Head("cora_cf_fallbacks_total", "counter", "Answers given by the CF stage because the deadline passed.");
        sb.Append("cora_cf_fallbacks_total ").Append(Interlocked.Read(ref _cfFallbacks)).Append('\n');
        Head("cora_model_load_seconds", "gauge", "How long the served model took to load and warm.");
        sb.Append("cora_model_load_seconds ").Append(F(Volatile.Read(ref _loadSeconds))).Append('\n');
        Head("cora_model_reloads_total", "counter", "Model reloads (SIGHUP), by result.");
        sb.Append("cora_model_reloads_total{result=\"ok\"} ").Append(Interlocked.Read(ref _reloads)).Append('\n');
        sb.Append("cora_model_reloads_total{result=\"failed\"} ").Append(Interlocked.Read(ref _reloadFailures)).Append('\n');
        Head("cora_model_info", "gauge", "The served model: its id (SHA-256 prefix of the file), Cora's version, method and CF stage.");
        sb.Append($"cora_model_info{{model_id=\"{L(served.Id)}\",version=\"{L(ServedModel.Version)}\",method=\"{L(served.Transformer.Model.Options.Method.ToString())}\",cf=\"{L(served.Transformer.Model.Cf.Kind)}\"}} 1\n");
        return sb.ToString();
    }
}

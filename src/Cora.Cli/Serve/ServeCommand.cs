using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Cora.Cli;

/// <summary><c>cora serve</c>: the HTTP service and the page, on loopback by default.</summary>
internal static class ServeCommand
{
    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create("The model (.zip) from cora train.");
        var model = loaded.Model;
        var host = new Option<string>("--host") { Description = "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        host.Validators.Add(r =>
        {
            var h = r.GetValueOrDefault<string>() ?? "";
            if (h != "localhost" && !System.Net.IPAddress.TryParse(h, out _)) r.AddError($"--host: '{Microsoft.ML.Cora.IO.ErrorText.Elide(h, 40)}' is not an IP address; use 127.0.0.1 (this machine), 0.0.0.0 (every interface) or localhost.");
        });
        var port = Cli.Int("--port", 5080, "TCP port (0 = any free port).", 0);
        port.Validators.Add(r => { if (r.Parsed(out int v) && v > 65535) r.AddError("--port must be at most 65535."); });
        var maxBatch = Cli.Int("--max-batch", BatcherOptions.DefaultMaxBatch, "Most rows merged into one model call.", 1);
        var maxWait = Cli.Int("--max-wait-ms", BatcherOptions.DefaultMaxWaitMs, "How long a request may wait for others to join its batch.", 0);
        var queue = Cli.Int("--queue", BatcherOptions.DefaultQueue, "Requests waiting at most (more get 503).", 1);
        var deadline = Cli.Int("--deadline-ms", BatcherOptions.DefaultDeadlineMs, "Per-request deadline; past it /score answers with the CF score (source \"cf\").", 1);
        var batch = Cli.Int("--batch", Microsoft.ML.Cora.CoraDefaults.ScoringBatchSize, "Rows per LLM forward inside a merged batch.", 1);
        var cmd = new Command("serve", "HTTP service: POST /score, GET /recommend/{user}?k=10, GET /healthz, /openapi/v1.json and a page at /.")
            { model, host, port, maxBatch, maxWait, queue, deadline, batch };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            var on = dev.Get(p);
            var (_, t) = loaded.Load(p, on, p.GetValue(batch));
            using var _ = t;
            var options = Options(p.GetValue(maxBatch), p.GetValue(maxWait), p.GetValue(queue), p.GetValue(deadline));
            var app = CoraService.Build(t, options, new[] { $"http://{p.GetValue(host)}:{p.GetValue(port)}" });
            app.Start();
            foreach (var url in app.Urls) c.Out.WriteLine($"listening on {url} (page: {url}/, OpenAPI: {url}/openapi/v1.json); Ctrl+C stops after in-flight requests");
            // Ctrl+C / SIGTERM stop the host (ASP.NET Core's console lifetime), which drains in-flight requests.
            app.WaitForShutdown();
            return 0;
        });
        return cmd;
    }

    internal static BatcherOptions Options(int maxBatch, int maxWaitMs, int queue, int deadlineMs) => new()
    {
        MaxBatch = maxBatch, MaxWait = TimeSpan.FromMilliseconds(maxWaitMs), Queue = queue, Deadline = TimeSpan.FromMilliseconds(deadlineMs),
    };
}

using System.CommandLine;
using Microsoft.ML.Cora.Estimators;
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
        var apiKeyFile = new Option<string?>("--api-key-file") { Description = $"File holding the API key that every route but /healthz, /readyz, /metrics and the page requires (or ${ApiKeyVariable}). Needed unless --host is a loopback address." };
        var maxBody = Cli.Int("--max-request-bytes", (int)ServeOptions.DefaultMaxRequestBytes, "Largest request body accepted (413 above it).", 1024);
        var rate = Cli.Int("--rate-limit", 0, "Requests per second per client address (429 above it); 0 = no limit.");
        var drain = Cli.Int("--drain-seconds", 0, "On SIGTERM, fail readiness for this long while still answering, then stop accepting (for a load balancer without a preStop pause).");
        foreach (var o in new[] { maxBatch, maxWait, queue, deadline, batch, maxBody, rate, drain }) FromEnvironment(o);
        var cmd = new Command("serve", "HTTP service: POST /score, GET /recommend/{user}?k=10, /healthz, /readyz, /metrics, /openapi/v1.json and a page at /. SIGHUP reloads the model.")
            { model, host, port, maxBatch, maxWait, queue, deadline, batch, apiKeyFile, maxBody, rate, drain };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            var on = dev.Get(p);
            // Where to listen: --host/--port when given, else ASP.NET Core's ASPNETCORE_URLS (or URLS) when set, else 127.0.0.1:5080.
            bool explicitAddress = p.GetResult(host) is { Implicit: false } || p.GetResult(port) is { Implicit: false };
            string? envUrls = Environment.GetEnvironmentVariable("ASPNETCORE_URLS") is { Length: > 0 } u ? u : Environment.GetEnvironmentVariable("URLS");
            string[]? urls = explicitAddress || string.IsNullOrEmpty(envUrls) ? new[] { $"http://{p.GetValue(host)}:{p.GetValue(port)}" } : null;
            string? key = p.GetValue(apiKeyFile) is { } kf ? ReadKey(kf) : Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } ek ? ek.Trim() : null;
            bool loopback = urls is not null ? IsLoopback(p.GetValue(host)!) : envUrls!.Split(';').All(x => x.Contains("://localhost") || x.Contains("://127.") || x.Contains("://[::1]"));
            if (key is null && !loopback)
                throw new UsageException($"serving beyond this machine needs an API key: pass --api-key-file (or set {ApiKeyVariable}), or listen on 127.0.0.1 behind a proxy that authenticates.");
            string modelPath = p.GetValue(model)!;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            (CoraTransformer Model, string Id) Load()
            {
                var (_, t) = loaded.Load(p, on, p.GetValue(batch));
                return (t, Microsoft.ML.Cora.Llm.LlmFiles.FileSha256(modelPath)[..12]);
            }
            var first = Load();
            Warm(first.Model);
            var options = Options(p.GetValue(maxBatch), p.GetValue(maxWait), p.GetValue(queue), p.GetValue(deadline));
            var served = new ServedModel(first.Model, options, first.Id, ownsModel: true);
            var app = CoraService.Build(served, options, urls, null, new ServeOptions
            {
                ApiKey = key, MaxRequestBytes = p.GetValue(maxBody), RatePerSecond = p.GetValue(rate), ModelId = first.Id, LoadSeconds = sw.Elapsed.TotalSeconds,
                DrainDelay = TimeSpan.FromSeconds(p.GetValue(drain)),
            });
            // SIGHUP: load the model file again (a new version put in its place), warm it, swap it in; the old one serves until then.
            using var hup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, ctx =>
            {
                ctx.Cancel = true;
                _ = Task.Run(async () =>
                {
                    var error = await served.ReloadAsync(Load, Warm);
                    c.Out.WriteLine(error is null ? $"reloaded {modelPath}: model {served.Current.Id}" : $"reload failed, still serving model {served.Current.Id}: {CoraCli.ErrorLine(error.Message)}");
                });
            });
            app.Start();
            foreach (var url in app.Urls) c.Out.WriteLine($"listening on {url} (page: {url}/, OpenAPI: {url}/openapi/v1.json, model {first.Id}); Ctrl+C stops after in-flight requests, SIGHUP reloads the model");
            // Ctrl+C / SIGTERM stop the host (ASP.NET Core's console lifetime): readiness fails at once, in-flight requests finish.
            app.WaitForShutdown();
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Lets an environment variable set a flag's default, after ASP.NET Core's convention (sections joined by a double underscore):
    /// <c>--deadline-ms</c> reads <c>Cora__Serve__DeadlineMs</c>. A flag given on the command line wins.
    /// </summary>
    internal static void FromEnvironment(Option<int> option)
    {
        string key = EnvironmentKey(option.Name);
        var fallback = option.DefaultValueFactory!;
        option.Description += $" (default from {key} when set)";
        option.DefaultValueFactory = r =>
        {
            if (Environment.GetEnvironmentVariable(key) is not { Length: > 0 } text) return fallback(r);
            if (int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v)) return v;
            r.AddError($"{key}: '{Microsoft.ML.Cora.IO.ErrorText.Elide(text, 40)}' is not a whole number (it sets {option.Name}).");
            return fallback(r);
        };
    }

    /// <summary><c>--max-wait-ms</c> -> <c>Cora__Serve__MaxWaitMs</c>.</summary>
    internal static string EnvironmentKey(string flag) =>
        "Cora__Serve__" + string.Concat(flag.TrimStart('-').Split('-').Select(w => char.ToUpperInvariant(w[0]) + w[1..]));

    /// <summary>Environment variable holding the API key (when --api-key-file is not given).</summary>
    public const string ApiKeyVariable = "CORA_API_KEY";

    private static string ReadKey(string path)
    {
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "--api-key-file");
        string k = File.ReadAllText(path).Trim();
        if (k.Length < 16) throw new UsageException($"--api-key-file: '{path}' holds {k.Length} characters; use a random key of at least 16.");
        return k;
    }

    private static bool IsLoopback(string host) => host == "localhost" || (System.Net.IPAddress.TryParse(host, out var a) && System.Net.IPAddress.IsLoopback(a));

    /// <summary>One scoring call before the model takes traffic (the first call pays for lazy initialisation).</summary>
    private static void Warm(CoraTransformer t)
    {
        var user = t.Model.Users.UserIds.FirstOrDefault();
        var item = t.Model.Items.Titles.Keys.FirstOrDefault();
        if (t.Model.Items.Count > 0) t.Model.Score(new[] { new Microsoft.ML.Cora.Data.Interaction(user, item, false, 0, true, t.Model.Users.Liked(user)) });
    }

    internal static BatcherOptions Options(int maxBatch, int maxWaitMs, int queue, int deadlineMs) => new()
    {
        MaxBatch = maxBatch, MaxWait = TimeSpan.FromMilliseconds(maxWaitMs), Queue = queue, Deadline = TimeSpan.FromMilliseconds(deadlineMs),
    };
}

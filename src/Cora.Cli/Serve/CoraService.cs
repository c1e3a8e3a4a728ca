using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Cli;

/// <summary>
/// <c>cora serve</c>: one loaded model shared by every request; POST /score merges concurrent requests into batches
/// (<see cref="ScoreBatcher"/>); GET /recommend/{user} retrieves with the CF stage and re-ranks; GET /healthz; the OpenAPI document at
/// /openapi/v1.json; the page at /. Bad requests get 400 with a problem-details body naming the field.
/// </summary>
public static class CoraService
{
    public const int MaxPairs = 10_000, MaxK = 100, MaxDeadlineMs = 600_000;

    /// <summary>Builds the app (not started) for one model. <paramref name="configure"/> may change the host (e.g. a test server).</summary>
    public static WebApplication Build(CoraTransformer model, BatcherOptions options, string[]? urls = null, Action<WebApplicationBuilder>? configure = null,
        ServeOptions? serve = null) =>
        Build(new ServedModel(model, options, serve?.ModelId ?? "in-memory", ownsModel: false), options, urls, configure, serve);

    /// <summary>Builds the app (not started) serving <paramref name="served"/> (which a reload may swap).</summary>
    internal static WebApplication Build(ServedModel served, BatcherOptions options, string[]? urls, Action<WebApplicationBuilder>? configure, ServeOptions? serve)
    {
        var so = serve ?? new ServeOptions();
        var builder = WebApplication.CreateSlimBuilder();
        // Structured JSON logs; levels from configuration (Logging__LogLevel__Default=Debug, appsettings), these are only the defaults.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Information", ["Logging:LogLevel:Microsoft"] = "Warning", ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information" },
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o => { o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ "; o.UseUtcTimestamp = true; o.IncludeScopes = true; });
        if (urls is not null) builder.WebHost.UseUrls(urls);   // else ASP.NET Core's own: ASPNETCORE_URLS / URLS
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = so.MaxRequestBytes);
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi();
        builder.Services.ConfigureHttpJsonOptions(j => { j.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower; });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(30));
        if (so.RatePerSecond > 0)
            builder.Services.AddRateLimiter(r =>
            {
                r.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
                r.GlobalLimiter = System.Threading.RateLimiting.PartitionedRateLimiter.Create<HttpContext, string>(ctx =>
                    System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter(ctx.Connection.RemoteIpAddress?.ToString() ?? "local",
                        _ => new System.Threading.RateLimiting.FixedWindowRateLimiterOptions { PermitLimit = so.RatePerSecond, Window = TimeSpan.FromSeconds(1), QueueLimit = 0 }));
            });
        // The app owns the served model's lifetime: disposing the app, stopped or not, drains its batcher (queued and running model
        // calls finish) before the caller can dispose a model it lent (ownsModel: false), so no call outlives the model's tensors.
        builder.Services.AddSingleton(_ => served);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.Services.GetRequiredService<ServedModel>();   // created by the container's factory: disposed (drained) with the app
        var metrics = new ServeMetrics();
        served.OnBatch = metrics.Batch;
        metrics.Loaded(so.LoadSeconds);
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Cora.Serve");
        bool draining = false;
        // Rolling updates: on SIGTERM readiness fails at once, while in-flight requests finish; then the queue is drained.
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            Volatile.Write(ref draining, true);
            if (so.DrainDelay > TimeSpan.Zero) Thread.Sleep(so.DrainDelay);   // still answering; the server stops accepting after this
        });
        app.Lifetime.ApplicationStopped.Register(() => served.DisposeAsync().AsTask().GetAwaiter().GetResult());
        app.UseExceptionHandler();
        app.UseStatusCodePages();   // every error response gets a problem-details body (malformed JSON, wrong types, 404s included)

        // Every request: an id (X-Request-Id, kept when the caller sends one), the model's id and version in the headers, an API
        // key check where one is set, a body size check, one JSON log line and the metrics.
        app.Use(async (ctx, next) =>
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            string id = ctx.Request.Headers.TryGetValue("X-Request-Id", out var given) && given.ToString() is { Length: > 0 and <= 128 } g ? g : Guid.NewGuid().ToString("N")[..16];
            ctx.TraceIdentifier = id;
            // One lease per request: the model named in the headers is the one the handler uses, and it stays alive until the end.
            using var lease = served.Acquire();
            var current = lease.Snapshot;
            ctx.Items[SnapshotKey] = current;
            ctx.Response.Headers["X-Request-Id"] = id;
            ctx.Response.Headers["X-Cora-Model"] = current.Id;
            ctx.Response.Headers["X-Cora-Version"] = ServedModel.Version;
            using var scope = log.BeginScope("request {request_id}", id);
            if (so.ApiKey is { } key && Protected(ctx.Request.Path) && !Authorized(ctx.Request, key))
            {
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await Results.Problem("Send the API key as 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'.", statusCode: StatusCodes.Status401Unauthorized).ExecuteAsync(ctx);
            }
            else if (ctx.Request.ContentLength > so.MaxRequestBytes)
                await Results.Problem($"The body is {ctx.Request.ContentLength} bytes; at most {so.MaxRequestBytes} are accepted. Split the request.", statusCode: StatusCodes.Status413PayloadTooLarge).ExecuteAsync(ctx);
            else await next(ctx);
            string route = (ctx.GetEndpoint() as Microsoft.AspNetCore.Routing.RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            metrics.Request(route, ctx.Response.StatusCode, sw.Elapsed.TotalSeconds);
            if (ctx.Items.TryGetValue("cora.source", out var src) && src is "cf") metrics.CfFallback();
            log.LogInformation("{method} {route} {status} {latency_ms:F1} ms rows={rows} source={source} model={model}", ctx.Request.Method, route, ctx.Response.StatusCode,
                sw.Elapsed.TotalMilliseconds, ctx.Items.TryGetValue("cora.rows", out var rows) ? rows : 0, src ?? "-", current.Id);
        });
        if (so.RatePerSecond > 0) app.UseRateLimiter();
        app.MapOpenApi();

        app.MapGet("/healthz", (HttpContext http) =>
        {
            var s = Served(http);
            return Results.Ok(new
            {
                status = "ok", model_id = s.Id, version = ServedModel.Version, method = s.Transformer.Model.Options.Method.ToString(), cf = s.Transformer.Model.Cf.Kind,
                batches = Interlocked.Read(ref s.Batcher.Batches), rows = Interlocked.Read(ref s.Batcher.Rows),
                received = Interlocked.Read(ref s.Batcher.Received), abandoned = Interlocked.Read(ref s.Batcher.Abandoned),
            });
        });
        // Ready: the model is loaded and warm and the service is not draining.
        app.MapGet("/readyz", (HttpContext http) =>
        {
            var s = Served(http);
            var body = new { status = Volatile.Read(ref draining) ? "draining" : "ready", model_id = s.Id, version = ServedModel.Version, method = s.Transformer.Model.Options.Method.ToString() };
            return Volatile.Read(ref draining) ? Results.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable) : Results.Ok(body);
        });
        app.MapGet("/metrics", (HttpContext http) => Results.Text(metrics.Render(Served(http)), "text/plain; version=0.0.4; charset=utf-8"));

        app.MapPost("/score", async (ScoreRequest? request, HttpContext http, CancellationToken ct) =>
        {
            var snapshot = Served(http);
            var model = snapshot.Transformer;
            var errors = Validate(model.Model, request);
            if (errors.Count > 0) return Results.ValidationProblem(errors, title: "Bad /score request");
            var rows = request!.Pairs!.Select(p => new Interaction(p.User!.Value, p.Item!.Value, false, 0, true,
                p.History?.Where(h => h != 0).ToArray() ?? model.Model.Users.Liked(p.User.Value))).ToList();
            foreach (var (i, problem) in PromptProblems(model.Model, rows).Take(20)) errors[$"pairs[{i}]"] = new[] { problem };
            if (errors.Count > 0) return Results.ValidationProblem(errors, title: "Bad /score request");
            var (scores, source) = await ScoreWithin(snapshot.Batcher, model.Model, rows, TimeSpan.FromMilliseconds(request.DeadlineMs ?? options.Deadline.TotalMilliseconds), ct);
            if (scores is null) return QueueFull();
            http.Items["cora.rows"] = rows.Count; http.Items["cora.source"] = source;
            return Results.Ok(new ScoreResponse(rows.Select((r, i) => new ScoredPair(r.UserId, r.ItemId, scores[i], CoraTransformer.Sigmoid(scores[i]), source)).ToList()));
        });

        // The same batching, queue limit and deadline as /score: the candidates' rows join the shared batches; past the deadline the
        // CF order answers (source "cf").
        app.MapGet("/recommend/{user:int}", async (int user, int? k, [FromQuery(Name = "deadline_ms")] int? deadlineMs, HttpContext http, CancellationToken ct) =>
        {
            var snapshot = Served(http);
            var model = snapshot.Transformer;
            int top = k ?? CoraDefaults.RecommendTop;
            var errors = new Dictionary<string, string[]>();
            if (top < 1 || top > MaxK) errors["k"] = new[] { $"k must be from 1 to {MaxK} (got {top})." };
            if (deadlineMs is { } d && (d < 1 || d > MaxDeadlineMs)) errors["deadline_ms"] = new[] { $"deadline_ms must be from 1 to {MaxDeadlineMs} (got {d})." };
            if (errors.Count > 0) return Results.ValidationProblem(errors, title: "Bad /recommend request");
            int pool = Math.Max(top, CoraDefaults.RecommendCandidates);
            var candidates = CoraRecommender.Retrieve(model.Model, user, top, null, pool, excludeSeen: true);
            // A candidate whose prompt cannot be built (a title longer than the context) is left out, not the whole answer.
            var bad = PromptProblems(model.Model, candidates.Rows).Select(x => x.Index).ToHashSet();
            if (bad.Count > 0)
                candidates = candidates with
                {
                    Rows = candidates.Rows.Where((_, i) => !bad.Contains(i)).ToList(), CfScores = candidates.CfScores.Where((_, i) => !bad.Contains(i)).ToArray(),
                };
            float[]? scores = candidates.CfScores;
            string source = "cf";
            if (model.Model.UsesLlm && candidates.Rows.Count > 0)
            {
                (scores, source) = await ScoreWithin(snapshot.Batcher, model.Model, candidates.Rows, deadlineMs is { } ms ? TimeSpan.FromMilliseconds(ms) : options.Deadline, ct);
                if (scores is null) return QueueFull();
                http.Items["cora.source"] = source;
            }
            http.Items["cora.rows"] = candidates.Rows.Count;
            var all = CoraRecommender.Rank(model.Model, candidates, scores, pool);
            var items = model.Model.Items;
            var cora = all.Take(top).Select(r => new RankedItem(r.Rank, r.ItemId, r.Title, r.Score, r.Probability, r.CfScore)).ToList();
            var cf = all.OrderByDescending(r => r.CfScore).ThenBy(r => r.ItemId).Take(top)
                .Select((r, i) => new RankedItem(i + 1, r.ItemId, r.Title, r.CfScore, CoraTransformer.Sigmoid(r.CfScore), r.CfScore)).ToList();
            var history = model.Model.Users.Liked(user).Where(items.Contains).Select(i => new TitledItem(i, items.Title(i))).ToList();
            return Results.Ok(new RecommendResponse(user, model.Model.Cf.KnowsUser(user), history, cf, cora, source));
        });

        app.MapGet("/users", (string? q, int? limit, HttpContext http) =>
        {
            var ids = Served(http).Transformer.Model.Users.UserIds;
            var hits = string.IsNullOrWhiteSpace(q) ? ids : ids.Where(u => u.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(q.Trim(), StringComparison.Ordinal));
            return Results.Ok(hits.Take(Math.Clamp(limit ?? 100, 1, 10_000)).ToList());
        });

        app.MapGet("/items", (string? q, int? limit, HttpContext http) =>
        {
            var items = Served(http).Transformer.Model.Items;
            var hits = items.Titles.Where(kv => string.IsNullOrWhiteSpace(q) || kv.Value.Contains(q, StringComparison.OrdinalIgnoreCase))
                .OrderBy(kv => kv.Key).Take(Math.Clamp(limit ?? 20, 1, 1000)).Select(kv => new TitledItem(kv.Key, kv.Value)).ToList();
            return Results.Ok(hits);
        });

        app.MapGet("/", () => Results.Content(Page.Value, "text/html; charset=utf-8"));
        app.MapGet("/favicon.ico", () => Results.Bytes(Favicon, "image/svg+xml"));
        return app;
    }

    private const string SnapshotKey = "cora.snapshot";

    /// <summary>The model snapshot this request holds a lease on (taken once, by the request middleware).</summary>
    private static ServedModel.Snapshot Served(HttpContext http) => (ServedModel.Snapshot)http.Items[SnapshotKey]!;

    /// <summary>Routes open without the API key: the probes, the metrics, the OpenAPI document, the page and its icon.</summary>
    private static bool Protected(PathString path) =>
        !(path == "/" || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/metrics")
          || path.StartsWithSegments("/openapi") || path.StartsWithSegments("/favicon.ico"));

    private static bool Authorized(HttpRequest r, string key)
    {
        string? given = r.Headers.Authorization.ToString() is { } a && a.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? a[7..].Trim()
            : r.Headers.TryGetValue("X-Api-Key", out var x) ? x.ToString() : null;
        if (given is null) return false;
        var g = System.Text.Encoding.UTF8.GetBytes(given); var k = System.Text.Encoding.UTF8.GetBytes(key);
        return g.Length == k.Length && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(g, k);
    }

    private static readonly byte[] Favicon = System.Text.Encoding.UTF8.GetBytes(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#2b5797'/><text x='8' y='12' font-size='10' text-anchor='middle' fill='white' font-family='sans-serif'>C</text></svg>");

    private static IResult QueueFull() =>
        Results.Problem("The scoring queue is full or the service is stopping; retry later.", statusCode: StatusCodes.Status503ServiceUnavailable);

    /// <summary>
    /// Scores rows through the batcher within <paramref name="deadline"/>: the model's scores ("cora"), or past the deadline the CF
    /// stage's ("cf") - the rows are then dropped from the batcher's work, or their model call stops between chunks. Null scores: the
    /// queue is full.
    /// </summary>
    private static async Task<(float[]? Scores, string Source)> ScoreWithin(ScoreBatcher batcher, CoraModel model, IReadOnlyList<Interaction> rows, TimeSpan deadline, CancellationToken aborted)
    {
        using var wanted = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        wanted.CancelAfter(deadline);
        if (!batcher.TryEnqueue(rows, wanted.Token, out var scored)) return (null, "");
        try { return (await scored.WaitAsync(wanted.Token), "cora"); }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested) { return (model.Cf.ScoreRows(rows), "cf"); }   // the documented fallback
    }

    /// <summary>Rows whose prompt cannot be built (e.g. a title longer than the LLM's context), with the reason.</summary>
    internal static IEnumerable<(int Index, string Problem)> PromptProblems(CoraModel model, IReadOnlyList<Interaction> rows)
    {
        if (!model.UsesLlm) yield break;
        for (int i = 0; i < rows.Count; i++)
        {
            string? problem = null;
            try { model.Tokenize(rows[i]); }   // cached per row: scoring reuses it
            catch (InvalidOperationException e) { problem = e.Message; }
            if (problem is not null) yield return (i, problem);
        }
    }

    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = typeof(CoraService).Assembly.GetManifestResourceStream("Cora.Cli.Serve.page.html")!;
        return new StreamReader(s).ReadToEnd();
    });

    /// <summary>Every problem of a /score body, by field ("pairs[3].item").</summary>
    internal static Dictionary<string, string[]> Validate(CoraModel model, ScoreRequest? request)
    {
        var e = new Dictionary<string, string[]>();
        if (request?.Pairs is not { Count: > 0 } pairs) { e["pairs"] = new[] { "Give at least one {\"user\": id, \"item\": id} pair." }; return e; }
        if (pairs.Count > MaxPairs) { e["pairs"] = new[] { $"At most {MaxPairs} pairs per request (got {pairs.Count}); split the request." }; return e; }
        if (request.DeadlineMs is { } d && (d < 1 || d > MaxDeadlineMs)) e["deadline_ms"] = new[] { $"deadline_ms must be from 1 to {MaxDeadlineMs} (got {d})." };
        for (int i = 0; i < pairs.Count && e.Count < 20; i++)
        {
            var p = pairs[i];
            if (p is null) { e[$"pairs[{i}]"] = new[] { "A pair is null." }; continue; }
            if (p.User is null) e[$"pairs[{i}].user"] = new[] { "The user id is missing." };
            if (p.Item is null) e[$"pairs[{i}].item"] = new[] { "The item id is missing." };
            else if (model.UsesLlm && !model.Items.Contains(p.Item.Value)) e[$"pairs[{i}].item"] = new[] { $"Item {p.Item} has no title in the model's catalog; the LLM cannot score it." };
        }
        return e;
    }
}

using Microsoft.ML.Cora.Reference;
#if CORA_SERVE
using Microsoft.Extensions.Logging;
#endif
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using Microsoft.ML.Cora.Methods;
using static TorchSharp.torch;

namespace Cora.Cli;

/// <summary><c>cora bench forward|train-step|golden</c>: measured figures with the command that produced them.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext c)
    {
        var cmd = new Command("bench", "Measure a CoRA training step, scoring, a forward, or CPU-vs-device logits: median, spread, rows/s, peak memory; side by side with the paper's way.");
        cmd.Subcommands.Add(Forward(c, "forward", "Forward of a random LLaMA of a published shape: median time, tokens/s, TFLOP/s."));
        cmd.Subcommands.Add(Workload(c, "train-step", "A CoRA training step as training runs it (prompts, CF lookup, generator, frozen LLM, BCE, backward, AdamW) on a real LLM (--llm; default the shared stories260K) and real rows; with --shape, on a random LLaMA of a published shape instead."));
        cmd.Subcommands.Add(Workload(c, "score", "Batch scoring as CoraModel.Score runs it (rows/s), on a real LLM and real rows."));
        cmd.Subcommands.Add(Workload(c, "transform", "Batch scoring through ML.NET (CoraTransformer.Transform and a cursor over Score), on the same rows as score."));
        cmd.Subcommands.Add(Golden(c));
#if CORA_SERVE
        cmd.Subcommands.Add(ServeLoadCommand(c));
#endif
        return cmd;
    }

#if CORA_SERVE
    private static Command ServeLoadCommand(CliContext c)
    {
        var loaded = ModelOptions.Create("The model (.zip) to serve.");
        var model = loaded.Model;
        var requests = Positive("--requests", 200, "Requests per concurrency level (a bounded run: it stops by itself).");
        var pairs = Positive("--pairs", 4, "User-item pairs per request.");
        var levels = new Option<string>("--concurrency") { Description = "Comma-separated concurrency levels.", DefaultValueFactory = _ => "1,8,32" };
        levels.Validators.Add(r => { if ((r.GetValueOrDefault<string>() ?? "").Split(',').Any(x => !int.TryParse(x, out int n) || n < 1 || n > 1024)) r.AddError("--concurrency: comma-separated integers from 1 to 1024, e.g. 1,8,32."); });
        var json = JsonOption();
        var cmd = new Command("serve", "Start cora serve in-process on 127.0.0.1 (a free port), run a bounded /score load at each concurrency, print p50/p95/p99 latency and rows/s, stop.")
            { model, requests, pairs, levels, json };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            Cli.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, new[] { p.GetValue(model) });
            var on = dev.Get(p);
            var (_, t) = loaded.Load(p, on);
            using var _ = t;
            // The table is the output: the service's per-request log lines are left out.
            var app = CoraService.Build(t, new BatcherOptions(), new[] { "http://127.0.0.1:0" }, b => b.Logging.ClearProviders());
            app.StartAsync().GetAwaiter().GetResult();
            var url = app.Urls.First();
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(5) };
            var rows = new JsonArray();
            c.Out.WriteLine($"load on {url}: {p.GetValue(requests)} requests x {p.GetValue(pairs)} pairs per concurrency level, threads {torch.get_num_threads()}");
            c.Out.WriteLine("concurrency  p50 ms   p95 ms   p99 ms   rows/s   answered  failed  wrong  cf-fallback");
            int offset = 0;
            ServeLoad.RunAsync(http, t.Model, 1, 4, p.GetValue(pairs), offset: 1_000_000).GetAwaiter().GetResult();   // warm-up
            foreach (int level in p.GetValue(levels)!.Split(',').Select(int.Parse))
            {
                var f = ServeLoad.RunAsync(http, t.Model, level, p.GetValue(requests), p.GetValue(pairs), offset).GetAwaiter().GetResult();
                offset += p.GetValue(requests);
                c.Out.WriteLine($"{f.Concurrency,11}  {f.P50Ms,7:F1}  {f.P95Ms,7:F1}  {f.P99Ms,7:F1}  {f.RowsPerSecond,7:F1}  {f.Answered,8}  {f.Failed,6}  {f.Mismatched,5}  {f.FromCf,11}");
                rows.Add(JsonSerializer.SerializeToNode(f));
            }
            app.StopAsync().GetAwaiter().GetResult();
            if (p.GetValue(json) is { } j) Cli.WriteJson(j, new JsonObject { ["what"] = "serve /score load", ["levels"] = rows, ["threads"] = torch.get_num_threads() });
            return 0;
        });
        return cmd;
    }
#endif

    private static Command Forward(CliContext c, string name, string description)
    {
        var shape = ShapeOption("tiny");
        var batch = Positive("--batch", 8, "Rows per step.");
        var tokens = Positive("--tokens", 256, "Tokens per row.");
        var repeats = Positive("--repeats", Microsoft.ML.Cora.CoraDefaults.BenchRepeats, "Timed repeats (after one warm-up).");
        var json = JsonOption();
        var cmd = new Command(name, description) { shape, batch, tokens, repeats, json };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (deviceSpec, dtypeSpec) = dev.Get(p);
            Cli.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, Array.Empty<string>());
            var (device, dtype) = ComputeTarget.Resolve(deviceSpec, dtypeSpec);
            RunShape(c, name, p.GetValue(shape)!, device, dtype, p.GetValue(batch), p.GetValue(tokens), p.GetValue(repeats), p.GetValue(json));
            return 0;
        });
        return cmd;
    }

    private static void RunShape(CliContext c, string name, string shapeName, Device device, ScalarType dtype, int b, int t, int repeats, string? json)
    {
        var config = LlmShapes.Get(shapeName);
        var r = name == "forward"
            ? Bench.Forward(config, shapeName, device, dtype, b, t, repeats)
            : Bench.CoraTrainStep(config, shapeName, device, dtype, b, t, repeats: repeats);
        c.Out.WriteLine($"{r.What} on {r.Device} in {r.Dtype}: median {r.MedianSeconds * 1000:F1} ms (min {r.MinSeconds * 1000:F1}, max {r.MaxSeconds * 1000:F1}, n={r.Repeats}), {r.ItemsPerSecond:F0} {r.ItemUnit}, {r.TflopsPerSecond:F2} TFLOP/s, peak device memory {r.PeakDeviceMiB:F0} MiB, peak host working set {r.PeakHostMiB:F0} MiB");
        if (name == "train-step")
        {
            double paper = Bench.PaperPeakMiB(config, dtype, b, t, r.TrainableParams);
            c.Out.WriteLine($"  on paper (bf16/fp16 weights + fp32 generator with AdamW + saved activations): {paper:F0} MiB; measured / paper = {(r.PeakDeviceMiB > 0 ? (r.PeakDeviceMiB / paper).ToString("F2") : "n/a (no CUDA)")}");
        }
        if (json is null) return;
        var o = JsonSerializer.SerializeToNode(r)!.AsObject();
        o["what"] = r.What; o["median_s"] = r.MedianSeconds; o["rows_per_s"] = b / r.MedianSeconds; o["peak_mb"] = r.PeakHostMiB; o["threads"] = torch.get_num_threads();
        Cli.WriteJson(json, o);
    }

    private static Command Workload(CliContext c, string name, string description)
    {
        var shape = ShapeOption(null);
        var llm = new Option<string?>("--llm") { Description = "Hugging Face folder or llama2.c .bin (default: the shared stories260K; without ../shared, a generated random LLaMA, labelled)." };
        var data = new Option<string?>("--data") { Description = "Folder with train.tsv and items.tsv (default: the shared ml-1m-collm; without ../shared, generated synthetic rows, labelled)." };
        var generator = new Option<string>("--generator") { Description = "Query generator size: paper (CoRA's, the default) or compact.", DefaultValueFactory = _ => "paper" };
        generator.AcceptOnlyFromAmong("paper", "compact");
        var method = new Option<string>("--method") { Description = "cora, collm or llm-lora.", DefaultValueFactory = _ => "cora" };
        method.AcceptOnlyFromAmong("cora", "collm", "llm-lora");
        var batch = Positive("--batch", name == "train-step" ? Microsoft.ML.Cora.CoraDefaults.ReferenceBatchSize : Microsoft.ML.Cora.CoraDefaults.ScoringBatchSize, "Rows per step (train-step) or per forward (score, transform).");
        var rowsPer = Positive("--rows", 256, "Rows scored per repeat (score, transform).");
        var tokens = Positive("--tokens", 200, "Tokens per row (with --shape only).");
        var repeats = Positive("--repeats", Microsoft.ML.Cora.CoraDefaults.BenchRepeats, "Timed repeats (after one warm-up).");
        var profile = new Option<bool>("--profile") { Description = "Also split the time by phase (prompts, CF lookup + generator, LLM forward, loss, backward, optimizer step)." };
        var baseline = new Option<string?>("--baseline")
        {
            Description = "paper: also run the same work the way CoRA's public code does it (Reference.PaperForward under the plain plan, generator in fp32), in the same process, and print the ratio; " +
                          "generator-fp32: the same with the generator's products in fp32 (see --generator-dtype); " +
                          (name == "train-step" ? "per-parameter-optimizer: the same with AdamW updating one parameter at a time (on a GPU: without its single buffer); " : "") +
                          $"or the name of one saving ({string.Join(", ", ComputePlan.SwitchNames)}): the same with only that saving off" +
                          (name == "transform" ? "; or direct: the same rows scored by the model directly (what Transform adds)." : "."),
        };
        baseline.AcceptOnlyFromAmong(ComputePlan.SwitchNames.Prepend("generator-fp32").Prepend("paper")
            .Concat(name switch { "transform" => new[] { "direct" }, "train-step" => new[] { "per-parameter-optimizer" }, _ => Array.Empty<string>() }).ToArray());
        var rounds = Positive("--rounds", 1, "With --baseline: measure Cora and the baseline this many times in alternation (ABAB...) and report " +
            "the median of the per-round ratios, so that a machine whose speed drifts affects both sides alike. With more than one round, one " +
            "untimed round of both comes first (the process warms up: JIT tiers, allocator arenas; without it the first timed round reads 10-25% slow).");
        var gpuPath = new Option<bool>("--gpu-code-path")
        {
            Description = "Take the code path a GPU takes, on any device: libtorch's attention and dropout instead of Cora's CPU kernels, no length " +
                          "groups, AdamW in libtorch operations instead of its fused CPU pass. With tools/libtorch-calls.sh it counts, on a CPU, the libtorch calls of a GPU step.",
        };
        var json = JsonOption();
        var cmd = new Command(name, description) { llm, data, generator, method, batch, repeats, profile, baseline, rounds, gpuPath, json };
        if (name == "train-step") { cmd.Options.Add(shape); cmd.Options.Add(tokens); }
        else cmd.Options.Add(rowsPer);
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            Cli.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, new[] { p.GetValue(llm), p.GetValue(data) });
            var on = dev.Get(p);
            var (deviceSpec, dtypeSpec) = on;
            var (device, dtype) = ComputeTarget.Resolve(deviceSpec, dtypeSpec);
            if (name == "train-step" && p.GetValue(shape) is { } sh)
            {
                RunShape(c, name, sh, device, dtype, p.GetValue(batch), p.GetValue(tokens), p.GetValue(repeats), p.GetValue(json));
                return 0;
            }
            using var setup = BenchSetup.Create(c, p.GetValue(llm), p.GetValue(data), Cli.ParseMethod(p.GetValue(method)!),
                p.GetValue(generator) == "compact" ? QueryGeneratorOptions.Compact : QueryGeneratorOptions.Paper, new ComputeTarget(device, dtype));
            int b = p.GetValue(batch), n = p.GetValue(repeats), per = p.GetValue(rowsPer);
            bool gpuCodePath = p.GetValue(gpuPath);
            var generatorDevice = gpuCodePath ? new Device(DeviceType.CUDA) : device;   // whose --generator-dtype auto the generator follows (a value: CUDA is not started)
            string generatorName = on.GeneratorDtypeName(generatorDevice);
            WorkloadFigures Run(ComputePlan plan, bool direct = false, bool generatorFp32 = false, bool paper = false)
            {
                // What CoraModel and AdamW do off the CPU: libtorch kernels, no length groups (see ComputePlan.LengthGroups).
                setup.Model.Plan = gpuCodePath ? plan with { NarrowHeadKernel = false, FastDropout = false, LengthGroups = false } : plan;
                setup.Model.GeneratorDtype = generatorFp32 ? "fp32" : generatorName;
                if (direct) return ModelBench.Score(setup.Model, setup.Rows, b, per, n, p.GetValue(profile));
                if (paper)
                    return name == "train-step"
                        ? ModelBench.TrainStep(setup.Model, setup.Rows, b, n, p.GetValue(profile), fusedOptimizer: !gpuCodePath, logits: slice => PaperForward.Logits(setup.Model, slice))
                        : ModelBench.Measure(setup.Model, setup.Rows, b, per, n, p.GetValue(profile), name, slice => PaperForward.Score(setup.Model, slice, b));
                return name switch
                {
                    "train-step" => ModelBench.TrainStep(setup.Model, setup.Rows, b, n, p.GetValue(profile), fusedOptimizer: !gpuCodePath),
                    "score" => ModelBench.Score(setup.Model, setup.Rows, b, per, n, p.GetValue(profile)),
                    _ => ModelBench.Measure(setup.Model, setup.Rows, b, per, n, p.GetValue(profile), "transform", setup.Transform(b)),
                };
            }
            var baselineName = p.GetValue(baseline);
            bool baselineFp32 = baselineName is "paper" or "generator-fp32";   // the paper's way computes the generator in fp32
            WorkloadFigures? RunBaseline() => baselineName switch
            {
                null => null,
                "paper" => Run(ComputePlan.Plain, generatorFp32: baselineFp32, paper: true),
                "generator-fp32" => Run(ComputePlan.Fast, generatorFp32: baselineFp32),
                "direct" => Run(ComputePlan.Fast, direct: true),
                "per-parameter-optimizer" => Run(ComputePlan.Fast with { SingleBufferOptimizer = false }),
                _ => Run(ComputePlan.Fast.Without(baselineName)),
            };
            string baselineLabel = baselineName switch { null or "paper" => "paper's way", "direct" => "direct", "generator-fp32" => "generator in fp32", "per-parameter-optimizer" => "AdamW per parameter", _ => $"no {baselineName}" };
            int roundCount = baselineName is null ? 1 : p.GetValue(rounds);
            var ratios = new List<double>();
            c.Out.WriteLine($"cpu: {MachineInfo.CpuModelName() ?? "(model unknown)"} ({MachineInfo.CpuSignature() ?? "no signature"}), {Environment.ProcessorCount} logical CPUs, libtorch threads {torch.get_num_threads()}");
            if (setup.Model.Generator is not null) c.Out.WriteLine(on.GeneratorLine(generatorDevice, gpuCodePath ? " on a GPU" : ""));
            if (gpuCodePath)
                c.Out.WriteLine(name == "train-step" ? "code path: a GPU's (libtorch attention and dropout, no length groups, AdamW in libtorch operations)"
                                                     : "code path: a GPU's (libtorch attention)");
            WorkloadFigures fast = null!; WorkloadFigures? other = null;
            if (roundCount > 1)
            {
                c.Out.WriteLine("warm-up round (not counted)");
                Run(ComputePlan.Fast); RunBaseline();
            }
            for (int r = 0; r < roundCount; r++)
            {
                fast = Run(ComputePlan.Fast);
                other = RunBaseline();
                if (other is not null) ratios.Add(fast.MedianSeconds / other.MedianSeconds);
                if (roundCount > 1)
                    c.Out.WriteLine($"round {r + 1}/{roundCount}: cora {fast.MedianSeconds * 1000:F1} ms, {baselineLabel} {other!.MedianSeconds * 1000:F1} ms, ratio {ratios[^1]:F3}");
            }
            double peak = ModelBench.MatmulPeakGflops(device);
            Print(c.Out, "cora", fast, peak);
            double ratio = ratios.Count > 0 ? Bench.Median(ratios.ToArray()) : double.NaN;
            if (other is not null)
            {
                Print(c.Out, baselineLabel, other, peak);
                string over = roundCount > 1 ? $" (median of {roundCount} alternating rounds, range {ratios.Min():F2}-{ratios.Max():F2}; the figures above are the last round's)" : "";
                c.Out.WriteLine($"  ratio cora / {baselineLabel}: {ratio:F2} of the time ({1 / ratio:F2}x faster){over}");
            }
            if (p.GetValue(json) is { } j)
            {
                var o = Json(fast, peak);
                if (other is not null)
                {
                    o["baseline"] = Json(other, peak); o["baseline"]!["plan"] = baselineName;
                    o["ratio"] = ratio; o["rounds"] = roundCount; o["round_ratios"] = new JsonArray(ratios.Select(x => (JsonNode)x).ToArray());
                }
                o["model"] = setup.Label; o["device"] = device.ToString(); o["llm_dtype"] = CoraDevice.DtypeName(dtype); o["generator_dtype"] = generatorName;
                if (o["baseline"] is JsonObject bo) bo["generator_dtype"] = baselineFp32 ? "fp32" : generatorName;
                Cli.WriteJson(j, o);
            }
            return 0;
        });
        return cmd;
    }

    private static void Print(TextWriter o, string label, WorkloadFigures f, double peakGflops)
    {
        double floor = f.FlopsPerRepeat / (peakGflops * 1e9);
        o.WriteLine($"{label,-12} {f.What}: median {f.MedianSeconds * 1000:F1} ms (min {f.MinSeconds * 1000:F1}, max {f.MaxSeconds * 1000:F1}, n={f.Repeats}), {f.RowsPerSecond:F1} rows/s, " +
                    $"{f.Gflops:F1} GFLOP/s = {100 * f.Gflops / peakGflops:F0}% of the {peakGflops:F0} GFLOP/s mm peak (floor {floor * 1000:F0} ms, {f.MedianSeconds / floor:F2}x it), threads {f.Threads}, peak host {f.PeakHostMiB:F0} MiB");
        foreach (var (phase, sec) in f.Phases)
            o.WriteLine($"    {phase,-32} {sec * 1000,8:F1} ms  {100 * sec / f.MedianSeconds,5:F1}%");
    }

    private static JsonObject Json(WorkloadFigures f, double peakGflops)
    {
        var o = new JsonObject
        {
            ["what"] = f.What, ["median_s"] = f.MedianSeconds, ["rows_per_s"] = f.RowsPerSecond, ["peak_mb"] = f.PeakHostMiB, ["threads"] = f.Threads,
            ["min_s"] = f.MinSeconds, ["max_s"] = f.MaxSeconds, ["repeats"] = f.Repeats, ["rows_per_repeat"] = f.RowsPerRepeat,
            ["gflop_per_repeat"] = f.FlopsPerRepeat / 1e9, ["gflops"] = f.Gflops, ["mm_peak_gflops"] = peakGflops, ["floor_s"] = f.FlopsPerRepeat / (peakGflops * 1e9),
        };
        if (f.Phases.Count > 0)
        {
            var ph = new JsonObject();
            foreach (var (phase, sec) in f.Phases) ph[phase] = sec;
            o["phases_s"] = ph;
        }
        return o;
    }

    private static Option<string?> ShapeOption(string? dflt)
    {
        var shape = new Option<string?>("--shape") { Description = $"Random LLM of a published shape: {string.Join(", ", LlmShapes.ByName.Keys)}." };
        if (dflt is not null) shape.DefaultValueFactory = _ => dflt;
        shape.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is { } v && !LlmShapes.ByName.ContainsKey(v)) r.AddError($"--shape: use {string.Join(", ", LlmShapes.ByName.Keys)}."); });
        return shape;
    }

    private static Option<string?> JsonOption() => new("--json") { Description = "Also write the result as one JSON object {what, median_s, rows_per_s, peak_mb, threads, ...}." };

    private static Command Golden(CliContext c)
    {
        var llm = new Option<string>("--llm") { Description = "Hugging Face folder or llama2.c .bin.", Required = true };
        var text = new Option<string>("--text") { Description = "Prompt whose logits are compared.", DefaultValueFactory = _ => "Once upon a time, there was a little girl named Lily." };
        var cmd = new Command("golden", "Logits of an LLM on the CPU in fp32 versus on --device in fp32 and in --llm-dtype: max |difference|.") { llm, text };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (deviceSpec, dtypeSpec) = dev.Get(p);
            var (device, dtype) = ComputeTarget.Resolve(deviceSpec, dtypeSpec);
            using var _ = torch.no_grad();
            using var cpu = LanguageModel.Load(p.GetValue(llm)!, new ComputeTarget(torch.CPU, torch.ScalarType.Float32));
            var ids = cpu.Tokenizer.Encode(p.GetValue(text)!, addBos: true).Select(i => (long)i).ToArray();
            using var reference = cpu.Model.Logits(torch.tensor(ids).unsqueeze(0));
            foreach (var dt in new[] { torch.ScalarType.Float32, dtype }.Distinct())
            {
                using var other = LanguageModel.Load(p.GetValue(llm)!, new ComputeTarget(device, dt));
                using var logits = other.Model.Logits(torch.tensor(ids, device: device).unsqueeze(0)).cpu().to(torch.ScalarType.Float32);
                double diff = logits.sub(reference).abs().max().item<float>();
                double scale = reference.abs().max().item<float>();
                c.Out.WriteLine($"golden {Path.GetFileName(p.GetValue(llm)!)} {ids.Length} tokens: {device} {CoraDevice.DtypeName(dt)} vs cpu fp32 max |diff| {diff:E2} (max |logit| {scale:F2})");
            }
            return 0;
        });
        return cmd;
    }

    private static Option<int> Positive(string name, int dflt, string desc)
    {
        var o = new Option<int>(name) { Description = desc, DefaultValueFactory = _ => dflt };
        o.Validators.Add(r => { if (r.Parsed(out int v) && v < 1) r.AddError($"{name} must be at least 1."); });
        return o;
    }
}

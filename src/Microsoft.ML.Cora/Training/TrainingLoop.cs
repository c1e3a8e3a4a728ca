using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.IO;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.CollaborativeFiltering;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>
/// Trains the trainable parts of a <see cref="CoraModel"/> (the LLM and CF model stay frozen): AdamW (0.9, 0.999),
/// linear warm-up then cosine decay, gradient accumulation, validation on a fixed random half of valid, best
/// weights by validation AUC, early stopping, deterministic on the CPU for a seed, cancellable, resumable.
/// </summary>
public static class TrainingLoop
{
    /// <summary>A fixed random half of valid (CoRA's valid_small).</summary>
    public static List<Interaction> ValidationHalf(IReadOnlyList<Interaction> valid, long seed, int cap = 0)
    {
        var idx = Seeded.Permutation(valid.Count, seed, "validation-half");
        int n = valid.Count / 2;
        if (cap > 0) n = Math.Min(n, cap);
        return idx.Take(Math.Max(1, n)).OrderBy(i => i).Select(i => valid[i]).ToList();
    }

    /// <summary>Deletes the checkpoints <see cref="TrainingOptions.CheckpointDirectory"/> holds (every set and manifest Cora writes
    /// there; other files stay): the next run starts afresh.</summary>
    public static void ClearCheckpoints(string directory) => Checkpoints.Clear(directory);

    /// <summary>Trains the model's trainable parts on <paramref name="train"/> (the LLM and the CF model stay frozen) with AdamW, the
    /// learning-rate schedule and validation of <paramref name="options"/>, keeping the weights of the best validation AUC and resuming
    /// from <see cref="TrainingOptions.CheckpointDirectory"/> when it holds this run's state.</summary>
    /// <param name="valid">Validation rows (a fixed sample of them is scored every <see cref="TrainingOptions.ValidateEvery"/> steps).</param>
    /// <param name="progress">Receives each step's progress.</param>
    /// <param name="log">Receives milestones as text lines.</param>
    /// <param name="ct">Stops training between steps (the best weights so far are kept, and a checkpoint is written when a folder is set).</param>
    public static TrainingResult Train(CoraModel model, IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, TrainingOptions? options = null,
        IProgress<TrainingProgress>? progress = null, Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new TrainingOptions();
        if (!model.UsesLlm) throw new InvalidOperationException("The mf method has nothing to train beyond the CF stage.");
        OptionChecks.ThrowIfAny(o.Validate("Training."), nameof(options));
        if (TrainingOptions.UserDropoutError(model.Options.Method, $"the CF model '{model.Cf.Kind}'", model.Cf.UserFromHistory, o.UserDropout) is { } ude)
            throw new ArgumentException("Training.UserDropout: " + ude, nameof(options));
        var rows = o.MaxTrainRows > 0 && o.MaxTrainRows < train.Count ? Seeded.Sample(train, o.MaxTrainRows, o.Seed) : train.ToList();
        InteractionChecks.RequireBothLabels(valid, "validation data");
        var validSmall = ValidationHalf(valid, o.Seed, o.MaxValidationRows);
        if (o.MaxValidationRows == 0 && validSmall.Select(r => r.Label).Distinct().Count() < 2)
        {
            // A tiny validation set whose seeded half holds one label: all of it is scored instead (AUC needs both labels).
            log?.Invoke($"the seeded half of the {valid.Count} validation rows holds one label; every validation scores all {valid.Count} rows");
            validSmall = valid.ToList();
        }
        InteractionChecks.RequireBothLabels(validSmall, $"the validation rows scored at each validation (a seeded half of the {valid.Count} validation rows{(o.MaxValidationRows > 0 ? $", at most {o.MaxValidationRows}: Training.MaxValidationRows / --max-valid-rows" : "")})");
        var labels = validSmall.Select(r => r.Label).ToArray();

        var trainable = model.Trainable;
        var named = trainable.named_parameters().ToList();
        var decay = named.Where(p => p.parameter.dim() > 1 && !p.name.EndsWith(".bias")).Select(p => p.parameter).ToList();
        var noDecay = named.Where(p => !(p.parameter.dim() > 1 && !p.name.EndsWith(".bias"))).Select(p => p.parameter).ToList();
        var opt = new AdamW(new[] { new AdamW.Group(decay, o.WeightDecay), new AdamW.Group(noDecay, 0.0) }, o.LearningRate)
        {
            SingleBuffer = model.Plan.SingleBufferOptimizer,
        };

        int stepsPerEpoch = (int)Math.Ceiling(rows.Count / (double)(o.BatchSize * o.GradientAccumulation));
        int totalSteps = stepsPerEpoch * o.Epochs;
        if (o.MaxSteps > 0) totalSteps = Math.Min(totalSteps, o.MaxSteps);
        int warmup = o.Warmup < 1 ? (int)Math.Round(o.Warmup * totalSteps) : (int)o.Warmup;

        var state = new RunState();
        using var best = new BestSnapshot();
        // Training.Ema: validation, and so the best snapshot, reads a moving average of the weights.
        using var average = o.Ema > 0 ? new WeightAverage(trainable, o.Ema) : null;
        var ckpt = o.CheckpointDirectory is null ? null : new Checkpoints(o.CheckpointDirectory, best, Fingerprint(model, rows, validSmall, o), log);
        bool resumed = false;
        if (ckpt is not null && ckpt.TryLoad(trainable, opt, average, out var loaded))
        {
            state = loaded!;
            resumed = true;
            log?.Invoke($"resumed from {o.CheckpointDirectory} at step {state.Step} (best valid AUC {state.BestAuc:F4})");
        }
        // A resumed run restores the CF-token scale with the other trainable tensors; a fresh one sets it from its training rows.
        if (!resumed)
        {
            model.CalibrateCfToken(rows, o.Seed);
            average?.Reset();                                                  // from the calibrated starting weights
        }
        var sw = Stopwatch.StartNew();
        int rowsDone = 0;
        double? lastAuc = state.ValidationCurve.Count > 0 ? state.ValidationCurve[^1].auc : null;

        void Validate()
        {
            trainable.eval();
            double auc;
            using (average?.Swapped())
            {
                var scores = model.Score(validSmall, o.ScoringBatchSize, ct);
                auc = Metrics.Auc(scores, labels);
                if (best.Offer(auc, trainable, state.Step)) { state.BestAuc = auc; state.BestStep = state.Step; state.SinceBest = 0; }
                else state.SinceBest++;
            }
            lastAuc = auc;
            state.ValidationCurve.Add((state.Step, auc));
            log?.Invoke($"step {state.Step}/{totalSteps}: valid AUC {auc:F4} (best {state.BestAuc:F4}){(average is null ? "" : ", weights averaged")}");
            ckpt?.Save(trainable, opt, state, average);
            trainable.train();
        }

        trainable.train();
        bool stop = false;
        // Patience is part of the checkpoint's fingerprint: a run that stopped by it stays stopped when the same command runs again.
        if (resumed && o.Patience > 0 && state.SinceBest >= o.Patience)
        {
            stop = true; state.StoppedEarly = true;   // saved with the last validation, before the stop was decided
            log?.Invoke($"the run stopped early at step {state.Step} ({state.SinceBest} validations without a better AUC, patience {o.Patience}): " +
                $"nothing left to train; the best weights (step {state.BestStep}) are kept. To train again, use another folder or --restart");
        }
        for (int epoch = 0; epoch < o.Epochs && !stop; epoch++)
        {
            var order = Seeded.Permutation(rows.Count, o.Seed, "epoch-order", epoch);
            for (int s = 0; s < stepsPerEpoch && !stop; s++)
            {
                int globalStep = epoch * stepsPerEpoch + s;
                if (globalStep < state.Step) continue;                       // already done before a resume
                if (globalStep >= totalSteps) { stop = true; break; }
                ct.ThrowIfCancellationRequested();
                torch.manual_seed(o.Seed * 1_000_003 + globalStep);         // dropout masks depend on the step only
                double lr = LearningRate(o.LearningRate, globalStep, warmup, totalSteps, o.MinLearningRate);
                opt.LearningRate = lr;
                opt.ZeroGrad();
                double lossSum = 0; int count = 0;
                for (int a = 0; a < o.GradientAccumulation; a++)
                {
                    int start = (s * o.GradientAccumulation + a) * o.BatchSize;
                    if (start >= order.Length) break;
                    var batch = order.AsSpan(start, Math.Min(o.BatchSize, order.Length - start)).ToArray().Select(i => rows[i]).ToList();
                    using var scope = torch.NewDisposeScope();
                    var logits = o.UserDropout > 0
                        ? model.Logits(AsNewUsers(batch, model.Cf, o.UserDropout, Seeded.Random(o.Seed, "user-dropout", globalStep * o.GradientAccumulation + a)), model.PromptsOf(batch))
                        : model.Logits(batch);
                    var y = torch.tensor(batch.Select(r => r.Label ? 1f : 0f).ToArray(), device: logits.device);
                    var loss = nn.functional.binary_cross_entropy_with_logits(logits, y).div(Scalars.Of((double)o.GradientAccumulation));
                    float lossValue = loss.item<float>();
                    if (!float.IsFinite(lossValue))
                        throw new TrainingDivergedException($"Training stopped at step {globalStep + 1}: the loss is {lossValue} (not finite). Lower the learning rate (now {lr:G3}) or check the data; nothing was saved from this step.");
                    loss.backward();
                    lossSum += lossValue * o.GradientAccumulation * batch.Count; count += batch.Count;
                }
                if (!opt.GradientsFinite())
                    throw new TrainingDivergedException($"Training stopped at step {globalStep + 1}: the gradients are not finite. Lower the learning rate (now {lr:G3}); nothing was saved from this step.");
                opt.Step();
                average?.Update();
                state.Step = globalStep + 1;
                rowsDone += count;
                double meanLoss = lossSum / Math.Max(1, count);
                state.LossCurve.Add((state.Step, meanLoss));
                double rate = rowsDone / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
                var eta = TimeSpan.FromSeconds((totalSteps - state.Step) * o.BatchSize * o.GradientAccumulation / Math.Max(rate, 1e-9));
                progress?.Report(new TrainingProgress(state.Step, totalSteps, meanLoss, rate, eta, lastAuc));
                bool endOfEpoch = s == stepsPerEpoch - 1 || state.Step == totalSteps;
                bool outOfTime = o.MaxMinutes > 0 && sw.Elapsed.TotalMinutes >= o.MaxMinutes && state.Step < totalSteps;
                if (state.Step % o.ValidateEvery == 0 || endOfEpoch || outOfTime)
                {
                    Validate();
                    if (o.Patience > 0 && state.SinceBest >= o.Patience) { state.StoppedEarly = true; stop = true; log?.Invoke("early stop"); }
                }
                if (outOfTime && !stop)
                {
                    state.StoppedEarly = true; stop = true;
                    log?.Invoke($"time limit: stopped after {sw.Elapsed.TotalMinutes:F1} minutes at step {state.Step}/{totalSteps} (Training.MaxMinutes / --max-minutes {o.MaxMinutes:G4}); the best weights are kept");
                }
            }
        }
        best.Restore(trainable);
        trainable.eval();
        // Gradients and AdamW's two moments (3x the trainable parameters) are not needed after training: free them now,
        // before the model is scored or saved.
        trainable.zero_grad(set_to_none: true);
        opt.Dispose();
        GC.Collect();
        return new TrainingResult(state.Step, state.BestAuc, state.BestStep, state.LossCurve, state.ValidationCurve, state.StoppedEarly, resumed);
    }

    /// <summary>The batch with a random share of its rows given a user id the CF model never saw (the rows' own prompts are kept
    /// by the caller), so that the CF stage treats them as it treats users who arrive after training.</summary>
    internal static List<Interaction> AsNewUsers(IReadOnlyList<Interaction> batch, ICollaborativeModel cf, double share, Random random)
    {
        int unseen = -1;
        while (cf.KnowsUser(unseen)) unseen--;
        return batch.Select(r => random.NextDouble() < share ? r with { UserId = unseen } : r).ToList();
    }

    /// <summary>
    /// What a checkpoint must match to be resumed: the training and validation rows, the options that shape the run (not MaxSteps,
    /// not the folder), the model's options and the LLM. Each part is a SHA-256 prefix, so a mismatch can say which part differs.
    /// </summary>
    internal static Dictionary<string, string> Fingerprint(CoraModel model, IReadOnlyList<Interaction> rows, IReadOnlyList<Interaction> valid, TrainingOptions o)
    {
        static string Hash(string s) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s)))[..16].ToLowerInvariant();
        static string Rows(IReadOnlyList<Interaction> rs) => string.Join('\n', rs.Select(r => $"{r.UserId} {r.ItemId} {(r.Label ? 1 : 0)} {string.Join(',', r.History)}"));
        var run = o with { MaxSteps = 0, MaxMinutes = 0, CheckpointDirectory = null };
        var json = new JsonSerializerOptions { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        return new Dictionary<string, string>
        {
            ["training data"] = Hash(Rows(rows)),
            ["validation data"] = Hash(Rows(valid)),
            ["training options"] = Hash(JsonSerializer.Serialize(run, json)),
            ["model options"] = Hash(JsonSerializer.Serialize(model.Options, json)),
            ["LLM"] = model.Llm is null ? "none" : Hash(model.Llm.SourcePath + "|" + model.Llm.Config),
            ["CF model"] = Hash($"{model.Cf.Kind}|{model.Cf.EmbeddingDim}|{model.Cf.ItemIds.Count}|{string.Join(",", model.Cf.ItemIds.Take(50))}"),
        };
    }

    /// <summary>Linear warm-up to the peak, then cosine decay to <paramref name="floor"/> at the last step.</summary>
    public static double LearningRate(double peak, int step, int warmup, int total, double floor = 0)
    {
        if (step < warmup) return peak * (step + 1) / warmup;
        double progress = (step - warmup) / (double)Math.Max(1, total - warmup);
        return floor + (peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }

    internal sealed class RunState
    {
        public int Step { get; set; }
        public double BestAuc { get; set; } = double.NegativeInfinity;
        public int BestStep { get; set; }
        public int SinceBest { get; set; }
        public bool StoppedEarly { get; set; }
        public List<(int step, double loss)> LossCurve { get; set; } = new();
        public List<(int step, double auc)> ValidationCurve { get; set; } = new();
    }

    /// <summary>
    /// The checkpoint folder: each save writes a complete set of files named after its step (trainable state, optimizer state, the
    /// best snapshot), then <c>state.json</c>, the manifest naming every file of the set with its size and SHA-256, atomically and
    /// last; the previous manifest is kept as <c>state.previous.json</c> with its files until the next save is committed. A resume
    /// checks the files against the manifest and, when the newest set is damaged or incomplete, falls back to the previous one,
    /// saying so; a kill at any point leaves at least one complete set.
    /// </summary>
    internal sealed class Checkpoints
    {
        internal const int Version = 3;
        internal const string Manifest = "state.json", PreviousManifest = "state.previous.json";
        /// <summary>Called after each file of a set is written (tests stop a save there, as a kill would).</summary>
        internal static Action<string>? AfterFileWritten;

        private readonly string _dir;
        private readonly BestSnapshot _best;
        private readonly Dictionary<string, string> _fingerprint;
        private readonly Action<string>? _log;
        public Checkpoints(string dir, BestSnapshot best, Dictionary<string, string> fingerprint, Action<string>? log = null)
        { _dir = dir; _best = best; _fingerprint = fingerprint; _log = log; Directory.CreateDirectory(dir); }
        private string P(string f) => Path.Combine(_dir, f);

        /// <summary>Deletes every checkpoint file Cora writes in <paramref name="dir"/> (manifests, sets, and the layout of earlier versions).</summary>
        public static void Clear(string dir)
        {
            if (!Directory.Exists(dir)) return;
            foreach (var f in Directory.EnumerateFiles(dir).Where(f => IsOurs(Path.GetFileName(f))).ToList()) File.Delete(f);
        }

        private static bool IsOurs(string name) =>
            name is Manifest or PreviousManifest or "current.safetensors" or "best.safetensors" or "optimizer.safetensors"
            || (name.EndsWith(".safetensors", StringComparison.Ordinal) && (name.StartsWith("current-", StringComparison.Ordinal)
                || name.StartsWith("optimizer-", StringComparison.Ordinal) || name.StartsWith("best-", StringComparison.Ordinal)
                || name.StartsWith("average-", StringComparison.Ordinal)));

        private (string name, long bytes, string sha256) Written(string name)
        {
            var info = new FileInfo(P(name));
            var entry = (name, info.Length, LlmFiles.FileSha256(P(name)));
            AfterFileWritten?.Invoke(name);
            return entry;
        }

        /// <summary>Writes the set of step <paramref name="s"/>. A write that fails (a full disk, a folder gone) is reported as one
        /// line with the step that was not saved, the committed step a rerun resumes from, and the space a set takes.</summary>
        public void Save(nn.Module trainable, AdamW opt, RunState s, WeightAverage? average = null)
        {
            try { SaveSet(trainable, opt, s, average); }
            catch (IOException e)
            {
                // The manifest is written last and atomically: after a failed save it still names the committed set.
                var committed = File.Exists(P(Manifest)) ? ReadSet(P(Manifest)) : null;
                string resume = committed is null ? "no earlier checkpoint is there, so a rerun starts afresh"
                    : $"the checkpoint there is intact and a rerun of the same command resumes from it (state.json, step {ReadStep(P(Manifest))})";
                string size = committed is null ? "" : $" (a checkpoint takes about {committed.Value.files.Values.Sum(f => f.bytes) / (1 << 20):N0} MiB, twice that while the next is written)";
                throw new IOException($"Checkpoint of step {s.Step} could not be written to {ErrorText.Elide(_dir)} ({e.Message.TrimEnd('.')}): {resume}. " +
                    $"Free space there{size}, then rerun.", e);
            }
        }

        private static int? ReadStep(string manifest)
        {
            try { return JsonDocument.Parse(File.ReadAllBytes(manifest)).RootElement.GetProperty("Step").GetInt32(); }
            catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException) { return null; }
        }

        private void SaveSet(nn.Module trainable, AdamW opt, RunState s, WeightAverage? average)
        {
            string stamp = s.Step.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);
            var files = new Dictionary<string, (string name, long bytes, string sha256)>();
            SafetensorsFile.Write(P($"current-{stamp}.safetensors"), trainable.state_dict());
            files["current"] = Written($"current-{stamp}.safetensors");
            SafetensorsFile.Write(P($"optimizer-{stamp}.safetensors"), opt.StateTensors());
            files["optimizer"] = Written($"optimizer-{stamp}.safetensors");
            if (average is not null)
            {
                SafetensorsFile.Write(P($"average-{stamp}.safetensors"), average.State);
                files["average"] = Written($"average-{stamp}.safetensors");
            }
            if (_best.HasState)
            {
                string bestName = $"best-{_best.Step.ToString("D8", System.Globalization.CultureInfo.InvariantCulture)}.safetensors";
                if (!File.Exists(P(bestName)) || ReadSet(P(Manifest))?.files.GetValueOrDefault("best").name != bestName)
                    AtomicFile.Write(P(bestName), st => { using var f = File.OpenRead(_best.FilePath); f.CopyTo(st, 1 << 20); });
                files["best"] = Written(bestName);
            }
            var json = JsonSerializer.Serialize(new
            {
                version = Version, fingerprint = _fingerprint, s.Step, optimizerSteps = opt.Steps, averageUpdates = average?.Updates ?? 0,
                BestAuc = JsonNumber(s.BestAuc), s.BestStep, s.SinceBest,
                loss = s.LossCurve.Select(x => new[] { x.step, JsonNumber(x.loss) }),
                valid = s.ValidationCurve.Select(x => new[] { x.step, JsonNumber(x.auc) }),   // NaN AUC (one class): null
                files = files.ToDictionary(kv => kv.Key, kv => new { kv.Value.name, kv.Value.bytes, kv.Value.sha256 }),
            });
            // The set is committed by the manifest, written last; the previous manifest (and its files) stay as the fallback.
            if (File.Exists(P(Manifest))) AtomicFile.Write(P(PreviousManifest), st => { using var f = File.OpenRead(P(Manifest)); f.CopyTo(st); });
            AfterFileWritten?.Invoke(PreviousManifest);
            AtomicFile.Write(P(Manifest), st => st.Write(System.Text.Encoding.UTF8.GetBytes(json)));
            AfterFileWritten?.Invoke(Manifest);
            RemoveUnreferenced();
        }

        /// <summary>Deletes set files named by neither manifest (sets superseded, or written by a save that was stopped).</summary>
        private void RemoveUnreferenced()
        {
            var keep = new[] { P(Manifest), P(PreviousManifest) }.Select(ReadSet).Where(x => x is not null)
                .SelectMany(x => x!.Value.files.Values.Select(f => f.name)).ToHashSet();
            foreach (var f in Directory.EnumerateFiles(_dir).Select(Path.GetFileName).Where(n => n is not null && IsOurs(n) && n.EndsWith(".safetensors") && !keep.Contains(n)).ToList())
                try { File.Delete(P(f!)); } catch (IOException) { }
        }

        // JSON has no NaN or infinity: such values are written as null and read back as the given stand-in.
        private static double? JsonNumber(double v) => double.IsFinite(v) ? v : null;
        private static double FromJson(JsonElement e, double whenNull) => e.ValueKind == JsonValueKind.Number ? e.GetDouble() : whenNull;

        /// <summary>A manifest's file list, or null when it is absent or unreadable.</summary>
        private static (int version, Dictionary<string, (string name, long bytes, string sha256)> files)? ReadSet(string manifest)
        {
            try
            {
                if (!File.Exists(manifest) || new FileInfo(manifest).Length > 64 << 20) return null;
                using var doc = JsonDocument.Parse(File.ReadAllText(manifest));
                var r = doc.RootElement;
                int version = r.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : 0;
                var files = new Dictionary<string, (string, long, string)>();
                if (r.TryGetProperty("files", out var fs) && fs.ValueKind == JsonValueKind.Object)
                    foreach (var p in fs.EnumerateObject())
                        files[p.Name] = (p.Value.GetProperty("name").GetString() ?? "", p.Value.GetProperty("bytes").GetInt64(), p.Value.GetProperty("sha256").GetString() ?? "");
                return (version, files);
            }
            catch (Exception e) when (e is JsonException or IOException or InvalidOperationException or KeyNotFoundException or FormatException) { return null; }
        }

        /// <summary>Why the set a manifest names cannot be used (null: every file is there with its size and hash).</summary>
        private string? SetProblem(string manifest)
        {
            if (!File.Exists(P(manifest))) return $"{manifest} is missing";
            var set = ReadSet(P(manifest));
            if (set is null) return $"{manifest} cannot be read";
            if (set.Value.version != Version) return $"{manifest} is from an earlier Cora (version {set.Value.version})";
            foreach (var role in new[] { "current", "optimizer" })
                if (!set.Value.files.ContainsKey(role)) return $"{manifest} names no {role} file";
            foreach (var (role, f) in set.Value.files)
            {
                if (f.name.Length == 0 || f.name != Path.GetFileName(f.name) || !IsOurs(f.name)) return $"{manifest}: '{ErrorText.Elide(f.name, 60)}' is not a checkpoint file name";
                var info = new FileInfo(P(f.name));
                if (!info.Exists) return $"{f.name} ({role}) is missing";
                if (info.Length != f.bytes) return $"{f.name} ({role}) has {info.Length} bytes, the manifest says {f.bytes}";
                if (LlmFiles.FileSha256(P(f.name)) != f.sha256) return $"{f.name} ({role}) does not match its SHA-256 in the manifest";
            }
            return null;
        }

        public bool TryLoad(nn.Module trainable, AdamW opt, WeightAverage? average, out RunState? s)
        {
            s = null;
            string? manifest = null;
            if (!File.Exists(P(Manifest)) && !File.Exists(P(PreviousManifest)))
            {
                if (File.Exists(P("current.safetensors")))
                    throw new InvalidDataException($"{_dir}: checkpoint written by an earlier Cora; delete the folder (or use --restart) to start afresh.");
                return false;
            }
            string? newest = SetProblem(Manifest);
            if (newest is null) manifest = Manifest;
            else
            {
                string? previous = SetProblem(PreviousManifest);
                if (previous is not null)
                    throw new InvalidDataException($"{_dir}: no complete checkpoint to resume from ({newest}; {previous}). Delete the folder (or use --restart) to start afresh.");
                // The previous set becomes the newest again, so the next save keeps it as its fallback.
                AtomicFile.Write(P(Manifest), st => { using var f = File.OpenRead(P(PreviousManifest)); f.CopyTo(st); });
                manifest = Manifest;
                _log?.Invoke($"the newest checkpoint in {_dir} is incomplete ({newest}); resuming from the one before it");
            }
            using var doc = JsonDocument.Parse(File.ReadAllText(P(manifest)));
            var r = doc.RootElement;
            var stored = r.GetProperty("fingerprint").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
            var differs = _fingerprint.Keys.Where(k => !stored.TryGetValue(k, out var sv) || sv != _fingerprint[k]).ToList();
            if (differs.Count > 0)
                throw new CheckpointMismatchException($"{_dir}: the checkpoint belongs to another run (different {string.Join(", ", differs)}); resuming would continue that run. Use another folder, or start afresh (delete the folder; CLI: --restart).");
            var files = ReadSet(P(manifest))!.Value.files;
            s = new RunState
            {
                Step = r.GetProperty("Step").GetInt32(), BestAuc = FromJson(r.GetProperty("BestAuc"), double.NegativeInfinity),
                BestStep = r.GetProperty("BestStep").GetInt32(), SinceBest = r.GetProperty("SinceBest").GetInt32(),
                LossCurve = r.GetProperty("loss").EnumerateArray().Select(a => ((int)a[0].GetDouble(), FromJson(a[1], double.NaN))).ToList(),
                ValidationCurve = r.GetProperty("valid").EnumerateArray().Select(a => ((int)a[0].GetDouble(), FromJson(a[1], double.NaN))).ToList(),
            };
            var cur = SafetensorsFile.Open(P(files["current"].name));
            using (torch.no_grad())
                foreach (var (k, t) in trainable.state_dict()) { using var v = cur.Read(k); t.copy_(v); }
            if (files.TryGetValue("best", out var bestFile)) _best.Adopt(P(bestFile.name), s.BestAuc, s.BestStep);
            var optFile = SafetensorsFile.Open(P(files["optimizer"].name));
            opt.LoadState(optFile.Read, r.GetProperty("optimizerSteps").GetInt64());
            if (average is not null)
            {
                // The decay is in the fingerprint, so a run with an average finds one in its own checkpoint.
                if (!files.TryGetValue("average", out var averageFile))
                    throw new InvalidDataException($"{_dir}: the checkpoint holds no weight average, yet this run keeps one (Training.Ema / --ema); delete the folder (or use --restart) to start afresh.");
                average.Load(SafetensorsFile.Open(P(averageFile.name)).Read, r.GetProperty("averageUpdates").GetInt64());
            }
            return true;
        }
    }
}

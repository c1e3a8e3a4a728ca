using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Prompting;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora;

/// <summary>
/// A recommender of one method: the frozen LLM (referenced), the frozen CF model, the item catalog, the prompt
/// builder and the trainable parts. Scores are the "Yes" logit at the last prompt token (MF: the CF logit).
/// The method's own behaviour lives in its <see cref="MethodStrategy"/>; the file format in <see cref="ModelArchive"/>.
/// Thread safety: scoring (<see cref="Score"/>) only reads shared state and may run on several threads at once;
/// training must not overlap with scoring.
/// </summary>
public sealed class CoraModel : IDisposable
{
    /// <summary>The options the model was built with (saved with it).</summary>
    public CoraModelOptions Options { get; }
    internal MethodStrategy Method { get; }
    /// <summary>The frozen LLM (null for MF alone).</summary>
    public LanguageModel? Llm { get; }
    /// <summary>The frozen CF model whose embeddings feed the method.</summary>
    public ICollaborativeModel Cf { get; }
    /// <summary>The item catalog (titles). Grows with <see cref="AddItems"/>.</summary>
    public ItemCatalog Items { get; private set; }
    /// <summary>Each training user's liked items and seen items (for recommendations); empty for models saved before format 2.</summary>
    public UserProfiles Users { get; set; } = UserProfiles.Empty;
    /// <summary>The SHA-256 of the frozen LLM's files recorded in the model file and checked when it was loaded (null for a model
    /// built in this process or without an LLM).</summary>
    public string? LlmChecksum { get; internal set; }
    /// <summary>Builds each row's prompt from the catalog's titles.</summary>
    public PromptBuilder Prompts { get; }
    internal TrainableParts Trainable { get; }
    /// <summary>The vocabulary id whose logit is the score (first token of "Yes").</summary>
    public int YesTokenId { get; }
    private readonly object _itemsGate = new();

    /// <summary>How the model computes (<see cref="ComputePlan.Fast"/>; <see cref="ComputePlan.Plain"/> for side-by-side benchmarks).
    /// Scores are the same either way.</summary>
    public ComputePlan Plan
    {
        get => _plan;
        set
        {
            _plan = value ?? throw new ArgumentNullException(nameof(value));
            Trainable.Apply(value);
        }
    }
    private ComputePlan _plan = ComputePlan.Fast;

    /// <summary>dtype of the query generator's matrix products: "auto" (<see cref="CoraDefaults.GeneratorDtype"/>: on a CPU whichever
    /// of bf16 and fp32 it runs faster for this generator's width, timed once per machine; fp32 on a GPU), "bf16" or "fp32"; resolved again whenever the model moves (<see cref="To"/>). Not saved with
    /// the model: its weights are fp32 either way, so a model trained one way scores the other. bf16 is not exact (scores move by
    /// about its rounding; see <see cref="Methods.QueryGenerator.MatmulDtype"/>).</summary>
    public string GeneratorDtype
    {
        get => _generatorDtype;
        set
        {
            if (CoraDevice.GeneratorDtypeError(value) is { } e) throw CoraDevice.Refusal(e, nameof(value));
            _generatorDtype = value;
            ApplyGeneratorDtype();
        }
    }
    private string _generatorDtype = CoraDefaults.GeneratorDtype;

    // The products run narrower than the weights only when the weights are fp32 (a model moved to fp64 computes in fp64).
    private void ApplyGeneratorDtype()
    {
        if (Generator is not { } g) return;
        var d = CoraDevice.ResolveGeneratorDtype(_generatorDtype, Device, g.Options.Hidden, g.Options.FeedForward);
        g.MatmulDtype = d != ScalarType.Float32 && g.query_tokens.dtype == ScalarType.Float32 ? d : null;
    }

    /// <summary>When set, the model's work is timed by phase into it (<c>cora bench --profile</c>).</summary>
    internal PhaseProfile? Profile { get; set; }

    /// <summary>A model of <paramref name="options"/>' method over a frozen LLM (null for MF), a trained CF model and the item catalog, with freshly initialised trainable parts (train them with <see cref="Training.TrainingLoop.Train"/>).</summary>
    public CoraModel(CoraModelOptions options, LanguageModel? llm, ICollaborativeModel cf, ItemCatalog items)
    {
        OptionChecks.ThrowIfAny(options.Validate("Model."), nameof(options));
        // The CF-token scale left to the CF model is resolved here, so the saved options say what the model was trained with.
        Options = options with { QueryGenerator = options.QueryGenerator with { CfTokenRms = options.QueryGenerator.CfTokenRmsFor(cf.Kind) } };
        Llm = llm; Cf = cf; Items = items;
        Method = MethodStrategy.For(options.Method);
        Prompts = new PromptBuilder(Method.Prompt(options.Prompt));
        if (Method.UsesLlm)
        {
            if (llm is null) throw new ArgumentException($"Method {options.Method} needs an LLM.", nameof(llm));
            YesTokenId = PromptBuilder.AnswerTokenId(llm.Tokenizer);
        }
        Trainable = BuildTrainable(options, llm, cf.EmbeddingDim);
        _scoringThreads = CoraDevice.Threads;
        if (llm is not null) To(llm.Device);   // also resolves GeneratorDtype (methods without an LLM have no generator)
    }

    /// <summary>The method's trainable parts for these options (also built on the "meta" device to learn the shapes a saved model must have).</summary>
    internal static TrainableParts BuildTrainable(CoraModelOptions options, LanguageModel? llm, int cfDim)
    {
        var method = MethodStrategy.For(options.Method);
        var parts = method.UsesLlm ? method.Build(options, llm ?? throw new ArgumentException($"Method {options.Method} needs an LLM.", nameof(llm)), cfDim)
            : new TrainableParts.None();
        parts.eval();
        return parts;
    }

    /// <summary>False for MF alone (the CF score is the score).</summary>
    public bool UsesLlm => Method.UsesLlm;

    /// <summary>CoRA's collaborative query generator; null for the other methods.</summary>
    internal QueryGenerator? Generator => (Trainable as CollaborativeLoraParts)?.query_generator;

    /// <summary>
    /// CoRA: sets the generator's CF-token scale (<see cref="QueryGeneratorOptions.CfTokenRms"/>) from a seeded sample of at most
    /// <see cref="CoraDefaults.CfTokenCalibrationRows"/> training rows; the trainer calls it before the first step. Sets it once: a
    /// model whose scale is already set (trained before, or loaded) keeps it, so training it further does not move the generator's
    /// input. Does nothing for the other methods or when the option is 0.
    /// </summary>
    public void CalibrateCfToken(IReadOnlyList<Interaction> rows, long seed)
    {
        double rms = Options.QueryGenerator.CfTokenRmsFor(Cf.Kind);
        if (Generator is not { } generator || rms <= 0 || rows.Count == 0) return;
        if (generator.token_scale.ne(Scalars.Of(1.0)).any().item<bool>()) return;
        var sample = rows.Count > CoraDefaults.CfTokenCalibrationRows ? Seeded.Sample(rows, CoraDefaults.CfTokenCalibrationRows, seed) : rows;
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var tokens = sample.Chunk(1024).Select(c => CollaborativeLoraMethod.CfToken(Cf, c, c.Select(r => (long)r.ItemId).ToArray())).ToList();
        generator.Calibrate(torch.cat(tokens, 0), rms);                                                  // [N, 2k]
    }

    /// <summary>The device every part lives on (the LLM's; the CF model's for MF alone).</summary>
    public Device Device => Llm?.Device ?? Cf.Device;

    /// <summary>
    /// Moves every part to <paramref name="device"/>: the frozen LLM (in <paramref name="llmDtype"/> when given), the CF
    /// model and the trainable parts (in <paramref name="trainableDtype"/>, fp32 unless given: the generator, the P maps
    /// and the loss stay in fp32 when the LLM runs in bf16). A model trained on one device scores on another after this.
    /// </summary>
    public CoraModel To(Device device, ScalarType? llmDtype = null, ScalarType trainableDtype = ScalarType.Float32)
    {
        Llm?.To(device, llmDtype);
        Cf.MoveTo(device, trainableDtype);
        Trainable.to(device, trainableDtype);
        ApplyGeneratorDtype();
        ApplyAttentionKernel();
        _scoringThreads = CoraDevice.Threads;
        return this;
    }

    /// <summary>Adds or replaces item titles (e.g. items released after training); titles are cleaned like every catalog's.</summary>
    public void AddItems(IEnumerable<KeyValuePair<int, string>> titles)
    {
        var list = titles.ToList();
        if (list.Count == 0) return;
        lock (_itemsGate) Items = Items.With(list);
    }

    /// <summary>Tokenised prompt of a row (history titles that are missing from the catalog are skipped).</summary>
    public TokenizedPrompt Tokenize(Interaction row) => _promptCache.GetValue(row, TokenizeAfresh);

    // Prompts are re-used across epochs and validations; the cache lives as long as the rows do.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Interaction, TokenizedPrompt> _promptCache = new();

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Interaction, string> _readyText = new();

    /// <summary>The rows' tokenised prompts, from the cache when the compute plan keeps one.</summary>
    internal List<TokenizedPrompt> PromptsOf(IReadOnlyList<Interaction> rows) =>
        rows.Select(_plan.CachePrompts ? Tokenize : (Func<Interaction, TokenizedPrompt>)TokenizeAfresh).ToList();

    /// <summary>A row's prompt tokenised now, bypassing the cache (ready prompt text set with <see cref="SetPrompt"/> included).</summary>
    internal TokenizedPrompt TokenizeAfresh(Interaction row)
    {
        if (_readyText.TryGetValue(row, out var text)) return TokenizeText(text);
        var items = Items;
        var hist = row.History.Where(items.Contains).Select(items.Title).ToList();
        return Prompts.Tokenize(hist, items.Title(row.ItemId), Llm!.Tokenizer, Llm.Config.MaxPositionEmbeddings);
    }

    /// <summary>Uses ready prompt text for this row (training and scoring) instead of the template.</summary>
    public void SetPrompt(Interaction row, string text)
    {
        _promptCache.AddOrUpdate(row, TokenizeText(text));
        _readyText.AddOrUpdate(row, text);
    }

    /// <summary>Tokenises ready prompt text; errors if it exceeds the LLM's context.</summary>
    public TokenizedPrompt TokenizeText(string text)
    {
        var p = PromptBuilder.TokenizeText(text, Llm!.Tokenizer);
        if (p.Ids.Length > Llm.Config.MaxPositionEmbeddings)
            throw new InvalidOperationException($"A prompt of {p.Ids.Length} tokens exceeds the LLM's context of {Llm.Config.MaxPositionEmbeddings}; shorten the prompt text (ready prompts are not truncated).");
        return p;
    }

    /// <summary>Logits [B] (fp32) for a batch (graph kept when the trainable parts are in training mode).</summary>
    public Tensor Logits(IReadOnlyList<Interaction> rows, IReadOnlyList<TokenizedPrompt>? prompts = null) => Logits(rows, prompts, null);

    /// <param name="rows">the batch's rows</param>
    /// <param name="prompts">their tokenised prompts, or null to tokenise them here</param>
    /// <param name="llmRows">when set, the LLM runs over groups of this many rows
    /// in prompt-length order, each padded to its own longest prompt, while the CF lookup and generator see all the rows at once</param>
    private Tensor Logits(IReadOnlyList<Interaction> rows, IReadOnlyList<TokenizedPrompt>? prompts, int? llmRows)
    {
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        if (!UsesLlm) { using var cf = Cf.Score(rows); return cf.to(ScalarType.Float32); }
        using var scope = torch.NewDisposeScope();
        var plan = _plan;
        Tensor ids, mask;
        using (PhaseProfile.Time(Profile, "prompts (tokenise, pad, copy)"))
        {
            prompts ??= PromptsOf(rows);
            (ids, mask) = Llm!.Pad(prompts.Select(p => (IReadOnlyList<int>)p.Ids).ToList(), left: false);          // [B, T]
        }
        Tensor embeds; IProjectionHook? hook;
        using (PhaseProfile.Time(Profile, "CF lookup + query generator"))
            (embeds, hook) = Method.Prepare(Trainable, Cf, Llm.Model.Embed(ids), rows, items, prompts);        // [B, T, D]
        using (PhaseProfile.Time(Profile, "LLM forward"))
        {
            Tensor logits;
            var groups = llmRows is { } g0 && g0 < rows.Count ? ConsecutiveGroups(prompts, g0)
                : GroupsByLength(plan, embeds.device_type) ? LengthGroups(prompts, plan.LengthGroupRows) : null;
            if (groups is not null)
            {
                // Each group padded to its own longest prompt; the logits are put back in the batch's order.
                var parts = new List<Tensor>(groups.Count);
                foreach (var g in groups)
                {
                    var idx = torch.tensor(g, device: embeds.device);
                    long len = g.Max(i => prompts[(int)i].Ids.Length);
                    var e = embeds.index_select(0, idx).narrow(1, 0, len);                                        // [G, Tg, D]
                    var m = mask.index_select(0, idx).narrow(1, 0, len);                                          // [G, Tg]
                    parts.Add(Llm.Model.LastTokenLogits(e, m, hook?.Rows(idx), new long[] { YesTokenId }, finalLayerAtLastToken: true, Kernels(plan)));   // [G, 1]
                }
                var order = groups.SelectMany(g => g).ToArray();
                var inverse = new long[order.Length];
                for (int i = 0; i < order.Length; i++) inverse[order[i]] = i;
                logits = torch.cat(parts, 0).index_select(0, torch.tensor(inverse, device: embeds.device));      // [B, 1]
            }
            else
                logits = Llm.Model.LastTokenLogits(embeds, mask, hook, new long[] { YesTokenId }, finalLayerAtLastToken: true, Kernels(plan));   // [B, 1]
            return logits.squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();                          // [B], fp32 whatever the LLM dtype
        }
    }

    /// <summary>Cora's kernels the LLM uses under <paramref name="plan"/>: for causal attention <see cref="NarrowHeadAttention"/> (with its
    /// vector width) where the plan allows it and, on the CPU, it measured faster than libtorch's attention for this LLM's heads
    /// (<see cref="AttentionKernelChoice"/>, decided when the model is built or moved, outside any inference mode); the RMS norm
    /// and rotary kernels where the plan allows them (they apply only to float32 on the CPU).</summary>
    internal LlmKernels Kernels(ComputePlan plan) => new(plan.NarrowHeadKernel ? _attention : AttentionKernel.Libtorch, plan.NormAndRotaryKernels);

    private AttentionKernel _attention;

    /// <summary>libtorch threads of a scoring call that runs as one stream on the calling thread (see <see cref="Score"/>): the process's
    /// count (<see cref="CoraDevice.Threads"/>) when the model was made or last moved.</summary>
    private int _scoringThreads = 1;

    private void ApplyAttentionKernel()
    {
        _attention = Llm is { } lm && Device.type == DeviceType.CPU && lm.Dtype == ScalarType.Float32
            ? AttentionKernelChoice.Kernel(AttentionKernelChoice.For(lm.Config.NumAttentionHeads, lm.Config.NumKeyValueHeads, lm.Config.HeadDim))
            : AttentionKernel.Libtorch;
    }

    /// <summary>Whether a training batch may run through the LLM in length groups (<see cref="ComputePlan.LengthGroups"/>): on the CPU
    /// only, where the padding it saves is compute; on a GPU each group is another pass of kernel launches.</summary>
    internal static bool GroupsByLength(ComputePlan plan, DeviceType device) => plan.LengthGroups && device == DeviceType.CPU;

    /// <summary>Rows in prompt-length order cut into groups of <paramref name="rows"/> (the last may be smaller).</summary>
    internal static List<long[]> ConsecutiveGroups(IReadOnlyList<TokenizedPrompt> prompts, int rows)
    {
        var order = Enumerable.Range(0, prompts.Count).OrderBy(i => prompts[i].Ids.Length).Select(i => (long)i).ToArray();
        return order.Chunk(rows).ToList();
    }

    /// <summary>
    /// Rows of a batch grouped by prompt length (each group at least <paramref name="minRows"/> rows, contiguous in length order),
    /// or null when one group pads little: a split is kept only if it saves at least a quarter of the padded attention work
    /// (sum over groups of rows x longest^2).
    /// </summary>
    internal static List<long[]>? LengthGroups(IReadOnlyList<TokenizedPrompt> prompts, int minRows)
    {
        int b = prompts.Count;
        if (b < 2 * minRows) return null;
        var order = Enumerable.Range(0, b).OrderBy(i => prompts[i].Ids.Length).ToArray();
        int count = b / minRows;
        var groups = new List<long[]>(count);
        double split = 0;
        for (int g = 0; g < count; g++)
        {
            int start = g * b / count, end = (g + 1) * b / count;
            var rows = order[start..end].Select(i => (long)i).ToArray();
            double longest = prompts[order[end - 1]].Ids.Length;
            split += rows.Length * longest * longest;
            groups.Add(rows);
        }
        double whole = b * Math.Pow(prompts[order[^1]].Ids.Length, 2);
        return split <= 0.75 * whole ? groups : null;
    }

    /// <summary>Scores rows in batches without gradients (safe to call from several threads).</summary>
    /// <param name="rows">The rows to score (their History is the user's liked items before the row).</param>
    /// <param name="batchSize">Rows per LLM forward (the CF lookup and generator see <see cref="Runtime.ComputePlan.GeneratorChunkRows"/> at once).</param>
    /// <param name="ct">Checked before each chunk.</param>
    /// <param name="promptTexts">Ready prompt text per row (used instead of the template), or null.</param>
    public float[] Score(IReadOnlyList<Interaction> rows, int batchSize = CoraDefaults.ScoringBatchSize, CancellationToken ct = default, IReadOnlyList<string>? promptTexts = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be at least 1.");
        var result = new float[rows.Count];
        if (rows.Count == 0) return result;
        var plan = _plan;
        using var grad = plan.InferenceMode ? torch.inference_mode() : torch.no_grad();
        // Prompts first (cached per row), then batches of similar length, so that little of each batch is padding.
        List<TokenizedPrompt>? prompts = null;
        if (UsesLlm)
            using (PhaseProfile.Time(Profile, "prompts (tokenise, pad, copy)"))
                prompts = promptTexts is not null ? promptTexts.Select(TokenizeText).ToList()
                        : PromptsOf(rows);
        int[] order = Enumerable.Range(0, rows.Count).ToArray();
        if (prompts is not null && plan.BucketByLength) order = order.OrderBy(i => prompts[i].Ids.Length).ToArray();
        // The CF lookup and generator run over chunks of several batches (their matrices are used better), the LLM over batches.
        int chunk = UsesLlm && plan.GeneratorChunks ? Math.Max(1, plan.GeneratorChunkRows / batchSize) * batchSize : batchSize;
        int chunks = (rows.Count + chunk - 1) / chunk;
        void ScoreChunk(int c)
        {
            using var scope = torch.NewDisposeScope();
            int s = c * chunk, n = Math.Min(chunk, rows.Count - s);
            var batchRows = new List<Interaction>(n);
            var batchPrompts = new List<TokenizedPrompt>(n);
            for (int j = 0; j < n; j++) { batchRows.Add(rows[order[s + j]]); if (prompts is not null) batchPrompts.Add(prompts[order[s + j]]); }
            var l = Logits(batchRows, prompts is null ? null : batchPrompts, chunk > batchSize ? batchSize : null).cpu().data<float>().ToArray();   // one host copy per chunk
            for (int j = 0; j < n; j++) result[order[s + j]] = l[j];
        }
        // Where streams are chosen, every chunk runs on one libtorch thread, even a lone one: a chunk's scores then do not depend
        // on how many chunks a call has (libtorch's kernels may round differently with another thread count), so a shard scored
        // alone gives the bits the whole input gives.
        int chosen = plan.ScoringStreams && Device.type == DeviceType.CPU && Llm is { } lm
            ? int.Parse(CpuChoices.ScoringStreams(lm.Config.HiddenSize).Chosen, System.Globalization.CultureInfo.InvariantCulture) : 1;
        int streams = chosen > 1 ? Math.Min(chunks, chosen) : 0;
        if (streams == 0)
        {
            // One stream on the calling thread, with the libtorch thread count the model was made or moved with, whatever this
            // thread was set to before (a thread-pool thread may carry another caller's count): the same bits from every caller.
            int before = Device.type == DeviceType.CPU ? torch.get_num_threads() : _scoringThreads;
            if (before != _scoringThreads) torch.set_num_threads(_scoringThreads);
            try
            {
                for (int c = 0; c < chunks; c++) { ct.ThrowIfCancellationRequested(); ScoreChunk(c); }
            }
            finally { if (before != _scoringThreads) torch.set_num_threads(before); }
            return result;
        }
        // Dedicated threads, each on one libtorch thread, taking the next chunk until none is left; each sets its count back to the
        // process's when it is done (a count set on a thread becomes the default of threads created after it).
        int next = -1;
        Exception? failure = null;
        var workers = Enumerable.Range(0, streams).Select(_ => new Thread(() =>
        {
            try
            {
                torch.set_num_threads(1);
                using var mode = plan.InferenceMode ? torch.inference_mode() : torch.no_grad();
                for (int c; (c = Interlocked.Increment(ref next)) < chunks && Volatile.Read(ref failure) is null;)
                {
                    ct.ThrowIfCancellationRequested();
                    ScoreChunk(c);
                }
            }
            catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
            finally { CoraDevice.RestoreThreads(); }
        }) { IsBackground = true, Name = "Cora scoring stream" }).ToList();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return result;
    }

    /// <summary>Writes the model as a zip, atomically (<see cref="ModelArchive"/>).</summary>
    public void Save(string path, bool embedLlm = false) => AtomicFile.Write(path, s => Save(s, embedLlm));

    /// <summary>Writes the model zip to a stream (see <see cref="Save(string, bool)"/>).</summary>
    public void Save(Stream stream, bool embedLlm = false) => ModelArchive.Save(this, stream, embedLlm);

    /// <summary>Loads a model zip (<see cref="ModelArchive.Load(Stream, string, string?, ComputeTarget)"/>).</summary>
    /// <param name="path">The model file.</param>
    /// <param name="llmPath">The frozen LLM (folder or .bin), when the file does not embed it; its checksum must match the recorded one.</param>
    /// <param name="device">Where to score: cpu, cuda, cuda:N or auto, whatever device the model was trained on.</param>
    /// <param name="llmDtype">The frozen LLM's dtype: auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16 or fp32.</param>
    public static CoraModel Load(string path, string? llmPath = null, string? device = null, string? llmDtype = null)
    {
        FileChecks.RequireRegularFile(path, "Model file");
        using var fs = File.OpenRead(path);
        return ModelArchive.Load(fs, path, llmPath, ComputeTarget.Resolve(device, llmDtype));
    }

    /// <summary>Reads a model zip from a stream (see <see cref="Load(string, string?, string?, string?)"/>); errors name <paramref name="name"/>.</summary>
    public static CoraModel Load(Stream stream, string name, string? llmPath = null, string? device = null, string? llmDtype = null) =>
        Load(stream, name, llmPath, ComputeTarget.Resolve(device, llmDtype));

    /// <summary>Reads a model zip from a stream onto a resolved device and LLM dtype; errors name <paramref name="name"/>.</summary>
    /// <param name="stream">The zip.</param>
    /// <param name="name">What to call the file in errors.</param>
    /// <param name="llmPath">The frozen LLM, when the file does not embed it and it is not where the model was trained.</param>
    /// <param name="target">Where to load the model, and the LLM's dtype.</param>
    public static CoraModel Load(Stream stream, string name, string? llmPath, ComputeTarget target) =>
        ModelArchive.Load(stream, name, llmPath, target);

    /// <summary>Frees the model's tensors, the frozen LLM included.</summary>
    public void Dispose()
    {
        Trainable.Dispose();
        Cf.Dispose();
        Llm?.Dispose();
    }
}

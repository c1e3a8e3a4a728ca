using System.IO.Compression;
using System.Text.Json;
using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora;

/// <summary>The methods of the paper's comparison, one option apart.</summary>
public enum CoraMethod
{
    /// <summary>The CF model alone (MF).</summary>
    Mf,
    /// <summary>TALLRec: the same prompt, a plain trainable LoRA, no CF signal.</summary>
    LlmLora,
    /// <summary>CoLLM: CF embeddings mapped by an MLP into token embeddings inserted in the prompt (plus LoRA).</summary>
    Collm,
    /// <summary>CoRA: CF embeddings -> query generator -> per-sample collaborative weights on the frozen LLM.</summary>
    Cora,
}

/// <summary>Model options. Defaults follow CoRA's public code (<see cref="CoraDefaults"/>); each says how to choose it.</summary>
public sealed record CoraModelOptions
{
    /// <summary>cora (default) or a baseline: mf, llm-lora (TALLRec), collm.</summary>
    public CoraMethod Method { get; init; } = CoraDefaults.Method;
    /// <summary>Rank r of the collaborative weights (16). Higher r = more capacity and a larger head (d_model * r outputs).</summary>
    public int Rank { get; init; } = CoraDefaults.Rank;
    /// <summary>alpha (32); the update is scaled by alpha / r (2 by default). Keep alpha / r near 2 when changing r.</summary>
    public double Alpha { get; init; } = CoraDefaults.Alpha;
    /// <summary>Dropout on the projection input of the low-rank term (0.05).</summary>
    public double Dropout { get; init; } = CoraDefaults.Dropout;
    /// <summary>Projections that receive collaborative weights (q, k, v, o of every layer). gate and up also work.</summary>
    public string[] TargetModules { get; init; } = { "q", "k", "v", "o" };
    /// <summary>The collaborative query generator (<see cref="QueryGeneratorOptions.Paper"/> by default, or <see cref="QueryGeneratorOptions.Compact"/>).</summary>
    public QueryGeneratorOptions QueryGenerator { get; init; } = new();
    /// <summary>LoRA rank of the llm-lora and collm baselines (8, TALLRec).</summary>
    public int LoraRank { get; init; } = CoraDefaults.LoraRank;
    /// <summary>LoRA alpha of the baselines (16).</summary>
    public double LoraAlpha { get; init; } = CoraDefaults.LoraAlpha;
    public string[] LoraTargetModules { get; init; } = { "q", "v" };
    public PromptOptions Prompt { get; init; } = new();
    /// <summary>Seed for every random initialisation (2023).</summary>
    public long Seed { get; init; } = CoraDefaults.Seed;

    /// <summary>Every out-of-range value, by option name.</summary>
    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        var e = OptionChecks.Between(prefix + nameof(Rank), Rank, 1, 1024)
            .Concat(OptionChecks.Finite(prefix + nameof(Alpha), Alpha, 0, 1e6, minExclusive: true))
            .Concat(OptionChecks.Finite(prefix + nameof(Dropout), Dropout, 0, 0.99))
            .Concat(OptionChecks.Between(prefix + nameof(LoraRank), LoraRank, 1, 1024))
            .Concat(OptionChecks.Finite(prefix + nameof(LoraAlpha), LoraAlpha, 0, 1e6, minExclusive: true))
            .Concat((QueryGenerator ?? new()).Validate(prefix + nameof(QueryGenerator) + "."));
        if (!Enum.IsDefined(Method)) e = e.Append(new OptionError(prefix + nameof(Method), $"{(int)Method} is not a method; use Mf, LlmLora, Collm or Cora."));
        foreach (var (name, list) in new[] { (nameof(TargetModules), TargetModules), (nameof(LoraTargetModules), LoraTargetModules) })
        {
            if (list is null || list.Length == 0) { e = e.Append(new OptionError(prefix + name, "is empty; name at least one projection (q, k, v, o, gate, up, down).")); continue; }
            foreach (var m in list)
                if (!ProjectionSite.TryParseKind(m, out _)) e = e.Append(new OptionError(prefix + name, $"'{m}' is not a projection; use q, k, v, o, gate, up or down."));
        }
        return e;
    }
}

/// <summary>The trainable parts of a method (the LLM and the CF model are frozen and not in here).</summary>
public sealed class TrainableParts : nn.Module
{
#pragma warning disable IDE1006
    public QueryGenerator? query_generator;
    public CollaborativeWeights? collaborative_weights;
    public LoraWeights? lora;
    public CfTokenMapper? cf_token_mapper;
#pragma warning restore IDE1006
    public TrainableParts() : base("trainable") { }
    public void Register() => RegisterComponents();
}

/// <summary>
/// A recommender of one method: the frozen LLM (referenced), the frozen CF model, the item catalog, the prompt
/// builder and the trainable parts. Scores are the "Yes" logit at the last prompt token (MF: the CF logit).
/// Thread safety: scoring (<see cref="Score"/>) only reads shared state and may run on several threads at once;
/// training must not overlap with scoring.
/// </summary>
public sealed class CoraModel : IDisposable
{
    /// <summary>2: adds users.tsv (what the model remembers of each training user). Format 1 files still load.</summary>
    public const int FormatVersion = 2;

    public CoraModelOptions Options { get; }
    public LanguageModel? Llm { get; }
    public MatrixFactorization Cf { get; }
    /// <summary>The item catalog (titles). Grows with <see cref="AddItems"/>.</summary>
    public ItemCatalog Items { get; private set; }
    /// <summary>Each training user's liked items and seen items (for recommendations); empty for models saved before format 2.</summary>
    public UserProfiles Users { get; set; } = UserProfiles.Empty;

    /// <summary>Adds or replaces item titles (e.g. items released after training); titles are cleaned like every catalog's.</summary>
    public void AddItems(IEnumerable<KeyValuePair<int, string>> titles)
    {
        var list = titles.ToList();
        if (list.Count == 0) return;
        lock (_itemsGate) Items = Items.With(list);
    }
    private readonly object _itemsGate = new();
    public PromptBuilder Prompts { get; }
    public TrainableParts Trainable { get; }
    /// <summary>The vocabulary id whose logit is the score (first token of "Yes").</summary>
    public int YesTokenId { get; }

    public CoraModel(CoraModelOptions options, LanguageModel? llm, MatrixFactorization cf, ItemCatalog items)
    {
        OptionChecks.ThrowIfAny(options.Validate("Model."), nameof(options));
        Options = options; Llm = llm; Cf = cf; Items = items;
        Prompts = new PromptBuilder(options.Prompt);
        Trainable = new TrainableParts();
        if (options.Method != CoraMethod.Mf)
        {
            if (llm is null) throw new ArgumentException($"Method {options.Method} needs an LLM.", nameof(llm));
            YesTokenId = PromptBuilder.AnswerTokenId(llm.Tokenizer);
            var cfg = llm.Config;
            if (options.Method == CoraMethod.Cora)
            {
                var sites = llm.Model.Sites(options.TargetModules.Select(ProjectionSite.ParseKind));
                Trainable.query_generator = new QueryGenerator(options.QueryGenerator, 2 * cf.EmbeddingDim, cfg.HiddenSize, options.Rank, options.Seed);
                Trainable.collaborative_weights = new CollaborativeWeights(sites, cfg.HiddenSize, options.Rank, options.Alpha, options.Dropout);
            }
            else
            {
                var sites = llm.Model.Sites(options.LoraTargetModules.Select(ProjectionSite.ParseKind));
                Trainable.lora = new LoraWeights(sites, options.LoraRank, options.LoraAlpha, options.Dropout, options.Seed);
                if (options.Method == CoraMethod.Collm)
                    Trainable.cf_token_mapper = new CfTokenMapper(cf.EmbeddingDim, cfg.HiddenSize);
            }
            Trainable.Register();
        }
        Trainable.eval();
        if (llm is not null) To(llm.Device);
    }

    /// <summary>The device every part lives on (the LLM's; the CPU for MF alone).</summary>
    public Device Device => Llm?.Device ?? Cf.user_embedding.weight!.device;

    /// <summary>
    /// Moves every part to <paramref name="device"/>: the frozen LLM (in <paramref name="llmDtype"/> when given), the CF
    /// model and the trainable parts (in <paramref name="trainableDtype"/>, fp32 unless given: the generator, the P maps
    /// and the loss stay in fp32 when the LLM runs in bf16). A model trained on one device scores on another after this.
    /// </summary>
    public CoraModel To(Device device, ScalarType? llmDtype = null, ScalarType trainableDtype = ScalarType.Float32)
    {
        Llm?.To(device, llmDtype);
        Cf.to(device, trainableDtype);
        Trainable.to(device, trainableDtype);
        return this;
    }

    public bool UsesLlm => Options.Method != CoraMethod.Mf;

    /// <summary>Prompt template for the method (CoLLM inserts soft-token slots).</summary>
    private PromptBuilder PromptsFor() => Options.Method == CoraMethod.Collm && Options.Prompt.Template == PromptOptions.DefaultTemplate
        ? new PromptBuilder(Options.Prompt with { Template = PromptOptions.CollmTemplate }) : Prompts;

    /// <summary>Tokenised prompt of a row (history titles that are missing from the catalog are skipped).</summary>
    public TokenizedPrompt Tokenize(Interaction row) => _promptCache.GetValue(row, TokenizeUncached);

    // Prompts are re-used across epochs and validations; the cache lives as long as the rows do.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Interaction, TokenizedPrompt> _promptCache = new();

    private TokenizedPrompt TokenizeUncached(Interaction row)
    {
        var hist = row.History.Where(Items.Contains).Select(Items.Title).ToList();
        return PromptsFor().Tokenize(hist, Items.Title(row.ItemId), Llm!.Tokenizer, Llm.Config.MaxPositionEmbeddings);
    }

    /// <summary>Uses ready prompt text for this row (training and scoring) instead of the template.</summary>
    public void SetPrompt(Interaction row, string text) => _promptCache.AddOrUpdate(row, TokenizeText(text));

    /// <summary>Tokenises ready prompt text; errors if it exceeds the LLM's context.</summary>
    public TokenizedPrompt TokenizeText(string text)
    {
        var p = PromptBuilder.TokenizeText(text, Llm!.Tokenizer);
        if (p.Ids.Length > Llm.Config.MaxPositionEmbeddings)
            throw new InvalidOperationException($"A prompt of {p.Ids.Length} tokens exceeds the LLM's context of {Llm.Config.MaxPositionEmbeddings}; shorten the prompt text (ready prompts are not truncated).");
        return p;
    }

    /// <summary>Logits [B] for a batch (graph kept when the trainable parts are in training mode).</summary>
    public Tensor Logits(IReadOnlyList<Interaction> rows, IReadOnlyList<TokenizedPrompt>? prompts = null)
    {
        var users = rows.Select(r => (long)r.UserId).ToArray();
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        if (!UsesLlm) { using var cf = Cf.Score(users, items); return cf.to(ScalarType.Float32); }
        using var scope = torch.NewDisposeScope();
        prompts ??= rows.Select(Tokenize).ToList();
        var (ids, mask) = Llm!.Pad(prompts.Select(p => (IReadOnlyList<int>)p.Ids).ToList());
        var embeds = Llm.Model.Embed(ids);                                               // [B, T, D]
        IProjectionHook? hook = null;
        switch (Options.Method)
        {
            case CoraMethod.Cora:
                var cfToken = torch.cat(new[] { Cf.UserEmbeddings(users), Cf.ItemEmbeddings(items) }, 1);   // [B, 2k]
                var a = Trainable.query_generator!.Forward(cfToken);                     // [B, D, r]
                hook = Trainable.collaborative_weights!.Bind(a);
                break;
            case CoraMethod.LlmLora:
                hook = Trainable.lora;
                break;
            case CoraMethod.Collm:
                hook = Trainable.lora;
                var u = Trainable.cf_token_mapper!.call(Cf.UserEmbeddings(users));          // [B, D]
                var it = Trainable.cf_token_mapper!.call(Cf.ItemEmbeddings(items));         // [B, D]
                var rowsIdx = new List<long>(); var posIdx = new List<long>(); var src = new List<Tensor>();
                for (int b = 0; b < prompts.Count; b++)
                    foreach (var (pos, slot) in prompts[b].Slots)
                    {
                        rowsIdx.Add(b); posIdx.Add(pos);
                        src.Add((slot == "<UserID>" ? u : it)[b]);
                    }
                if (src.Count > 0)
                    embeds = embeds.clone().index_put_(torch.stack(src).to(embeds.dtype), torch.tensor(rowsIdx.ToArray(), device: embeds.device), torch.tensor(posIdx.ToArray(), device: embeds.device));
                break;
        }
        var logits = Llm.Model.LastTokenLogits(embeds, mask, hook, new long[] { YesTokenId });   // [B, 1]
        return logits.squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();     // [B], fp32 whatever the LLM dtype
    }

    /// <summary>Scores rows in batches without gradients (safe to call from several threads).</summary>
    /// <param name="promptTexts">Ready prompt text per row (used instead of the template), or null.</param>
    public float[] Score(IReadOnlyList<Interaction> rows, int batchSize = CoraDefaults.ScoringBatchSize, CancellationToken ct = default, IReadOnlyList<string>? promptTexts = null)
    {
        var result = new float[rows.Count];
        using var _ = torch.no_grad();
        for (int s = 0; s < rows.Count; s += batchSize)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            var batch = rows.Skip(s).Take(batchSize).ToList();
            var prompts = promptTexts is null || !UsesLlm ? null : promptTexts.Skip(s).Take(batchSize).Select(TokenizeText).ToList();
            var l = Logits(batch, prompts).cpu().data<float>().ToArray();
            Array.Copy(l, 0, result, s, l.Length);
        }
        return result;
    }

    // ---------------------------------------------------------------- save / load

    private sealed record Manifest(int FormatVersion, string Method, CoraModelOptions Options, string? LlmPath, string? LlmChecksum,
        bool LlmEmbedded, int YesTokenId, Dictionary<string, string>? EntrySha256);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>
    /// Writes the model as a zip (atomically): manifest.json (format version, options, LLM path and SHA-256),
    /// cf.safetensors, trainable.safetensors, items.tsv, and optionally the LLM files under llm/.
    /// </summary>
    public void Save(string path, bool embedLlm = false) => AtomicFile.Write(path, s => Save(s, embedLlm));

    public void Save(Stream stream, bool embedLlm = false)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var hashes = new Dictionary<string, string>();
        // Each entry is streamed into the zip and hashed while written: no whole-entry copy in memory.
        void Add(string entry, Action<Stream> write, CompressionLevel level = CompressionLevel.Optimal)
        {
            using var e = zip.CreateEntry(entry, level).Open();
            using var h = new HashingStream(e);
            write(h);
            hashes[entry] = h.Hex();
        }
        Add("cf.safetensors", s => SafetensorsFile.Write(s, Cf.ExportState()));
        Add("trainable.safetensors", s => SafetensorsFile.Write(s, Trainable.state_dict()));
        Add("items.tsv", Items.Write);
        Add("users.tsv", Users.Write);
        if (embedLlm && Llm is not null)
        {
            var files = File.Exists(Llm.SourcePath) ? new[] { Llm.SourcePath, Llm.Tokenizer.Source } : Llm.WeightFiles().ToArray();
            foreach (var f in files.Distinct())
                Add("llm/" + Path.GetFileName(f), s => { using var src = File.OpenRead(f); src.CopyTo(s, 1 << 20); }, CompressionLevel.NoCompression);
        }
        // The manifest goes last: it carries the SHA-256 of every other entry, checked on load.
        var m = new Manifest(FormatVersion, Options.Method.ToString(), Options, Llm?.SourcePath, Llm?.Checksum(), embedLlm && Llm is not null, YesTokenId, hashes);
        using (var w = new StreamWriter(zip.CreateEntry("manifest.json").Open())) w.Write(JsonSerializer.Serialize(m, Json));
    }

    /// <summary>Loads a model zip. The LLM is read from the recorded path (or <paramref name="llmPath"/>) and its checksum verified.</summary>
    /// <param name="device">Where to score: cpu, cuda, cuda:N or auto, whatever device the model was trained on.</param>
    /// <param name="llmDtype">The frozen LLM's dtype: auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16 or fp32.</param>
    public static CoraModel Load(string path, string? llmPath = null, string? device = null, string? llmDtype = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file not found: '{path}'.", path);
        using var fs = File.OpenRead(path);
        return Load(fs, path, llmPath, device, llmDtype);
    }

    public static CoraModel Load(Stream stream, string name, string? llmPath = null, string? device = null, string? llmDtype = null)
    {
        var targetDevice = CoraDevice.Resolve(device);
        CoraDevice.ResolveDtype(llmDtype, targetDevice);
        ZipArchive zip;
        try { zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{name}: not a Cora model (not a readable zip: {e.Message}).", e); }
        using var _ = zip;
        string scratch = Path.Combine(Path.GetTempPath(), "cora-load-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        try
        {
            ZipArchiveEntry Entry(string n) => zip.GetEntry(n) ?? throw new InvalidDataException($"{name}: the entry '{n}' is missing; the file is not a complete Cora model.");
            foreach (var e in zip.Entries)
            {
                var full = Path.GetFullPath(Path.Combine(scratch, e.FullName));
                if (!full.StartsWith(scratch + Path.DirectorySeparatorChar, StringComparison.Ordinal) || Path.IsPathRooted(e.FullName))
                    throw new InvalidDataException($"{name}: entry '{e.FullName}' points outside the archive (path traversal); refusing to load.");
            }
            Manifest m;
            try
            {
                using var r = new StreamReader(Entry("manifest.json").Open());
                m = JsonSerializer.Deserialize<Manifest>(r.ReadToEnd(), Json) ?? throw new InvalidDataException("empty manifest");
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
            { throw new InvalidDataException($"{name}: manifest.json is corrupt ({e.Message}).", e); }
            if (m.FormatVersion > FormatVersion)
                throw new InvalidDataException($"{name}: saved by a newer Cora (model format {m.FormatVersion}; this version reads up to {FormatVersion}). Upgrade Cora.");
            if (m.FormatVersion < 1)
                throw new InvalidDataException($"{name}: unknown model format version {m.FormatVersion}.");

            string Extract(string entry)
            {
                string target = Path.Combine(scratch, entry.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                try { Entry(entry).ExtractToFile(target, overwrite: true); }
                catch (InvalidDataException e) { throw new InvalidDataException($"{name}: entry '{entry}' is corrupt ({e.Message}).", e); }
                if (m.EntrySha256 is null || !m.EntrySha256.TryGetValue(entry, out var expected))
                    throw new InvalidDataException($"{name}: entry '{entry}' is not listed in manifest.json; the file is corrupt or was altered.");
                using (var fs = File.OpenRead(target))
                    if (Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(fs)).ToLowerInvariant() != expected)
                        throw new InvalidDataException($"{name}: entry '{entry}' is corrupt (SHA-256 differs from manifest.json).");
                return target;
            }
            var cfFile = SafetensorsFile.Open(Extract("cf.safetensors"));
            var cf = MatrixFactorization.ImportState(cfFile.Read);
            var items = ItemCatalog.Read(Extract("items.tsv"));
            var users = m.FormatVersion >= 2 ? UserProfiles.Read(File.OpenRead(Extract("users.tsv")), name + ": users.tsv") : UserProfiles.Empty;
            LanguageModel? llm = null;
            if (m.Options.Method != CoraMethod.Mf)
            {
                string? source = llmPath;
                if (source is null && m.LlmEmbedded)
                {
                    foreach (var e in zip.Entries.Where(e => e.FullName.StartsWith("llm/"))) Extract(e.FullName);
                    string dir = Path.Combine(scratch, "llm");
                    source = File.Exists(Path.Combine(dir, "config.json")) ? dir : Directory.EnumerateFiles(dir, "*.bin").First(f => LooksLikeCheckpoint(f));
                }
                source ??= m.LlmPath;
                if (source is null || (!File.Exists(source) && !Directory.Exists(source)))
                    throw new FileNotFoundException($"{name}: the LLM this model was trained with is not at '{m.LlmPath}'. Move it back, or pass its new location (llmPath / --llm).");
                string sum = LanguageModel.ChecksumOf(source);
                if (m.LlmChecksum is not null && sum != m.LlmChecksum)
                    throw new InvalidDataException($"{name}: the LLM at '{source}' changed since training (SHA-256 {sum[..12]}..., recorded {m.LlmChecksum[..12]}...). Scores would be wrong; use the original weights.");
                llm = LanguageModel.Load(source, device: device, dtype: llmDtype);
            }
            var model = new CoraModel(m.Options, llm, cf, items) { Users = users };
            var tf = SafetensorsFile.Open(Extract("trainable.safetensors"));
            var expected = model.Trainable.state_dict();
            var missing = expected.Keys.Where(k => !tf.Entries.ContainsKey(k)).ToList();
            if (missing.Count > 0 || tf.Entries.Count != expected.Count)
                throw new InvalidDataException($"{name}: trainable.safetensors does not match the options (missing: {string.Join(", ", missing.Take(5))}; stored {tf.Entries.Count}, expected {expected.Count}).");
            using (torch.no_grad())
                foreach (var (k, t) in expected)
                {
                    using var v = tf.Read(k);
                    if (!v.shape.SequenceEqual(t.shape)) throw new InvalidDataException($"{name}: tensor '{k}' has shape [{string.Join(", ", v.shape)}], expected [{string.Join(", ", t.shape)}].");
                    t.copy_(v);
                }
            model.Trainable.eval();
            if (llm is null) model.To(targetDevice);
            return model;
        }
        finally
        {
            // The LLM (if embedded) is fully loaded into memory by now.
            try { Directory.Delete(scratch, true); } catch (IOException) { }
        }
    }

    private static bool LooksLikeCheckpoint(string f) => !Path.GetFileName(f).StartsWith("tok", StringComparison.OrdinalIgnoreCase);

    public void Dispose()
    {
        Trainable.Dispose();
        Cf.Dispose();
        Llm?.Dispose();
    }
}

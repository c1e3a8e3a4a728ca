using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Formats;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora;

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
/// The method's own behaviour lives in its <see cref="MethodStrategy"/>; the file format in <see cref="ModelArchive"/>.
/// Thread safety: scoring (<see cref="Score"/>) only reads shared state and may run on several threads at once;
/// training must not overlap with scoring.
/// </summary>
public sealed class CoraModel : IDisposable
{
    public CoraModelOptions Options { get; }
    public MethodStrategy Method { get; }
    public LanguageModel? Llm { get; }
    public ICollaborativeModel Cf { get; }
    /// <summary>The item catalog (titles). Grows with <see cref="AddItems"/>.</summary>
    public ItemCatalog Items { get; private set; }
    /// <summary>Each training user's liked items and seen items (for recommendations); empty for models saved before format 2.</summary>
    public UserProfiles Users { get; set; } = UserProfiles.Empty;
    public PromptBuilder Prompts { get; }
    public TrainableParts Trainable { get; }
    /// <summary>The vocabulary id whose logit is the score (first token of "Yes").</summary>
    public int YesTokenId { get; }
    private readonly object _itemsGate = new();

    public CoraModel(CoraModelOptions options, LanguageModel? llm, ICollaborativeModel cf, ItemCatalog items)
    {
        OptionChecks.ThrowIfAny(options.Validate("Model."), nameof(options));
        Options = options; Llm = llm; Cf = cf; Items = items;
        Method = MethodStrategy.For(options.Method);
        Prompts = new PromptBuilder(Method.Prompt(options.Prompt));
        if (Method.UsesLlm)
        {
            if (llm is null) throw new ArgumentException($"Method {options.Method} needs an LLM.", nameof(llm));
            YesTokenId = PromptBuilder.AnswerTokenId(llm.Tokenizer);
        }
        Trainable = BuildTrainable(options, llm, cf.EmbeddingDim);
        if (llm is not null) To(llm.Device);
    }

    /// <summary>The method's trainable parts for these options (also built on the "meta" device to learn the shapes a saved model must have).</summary>
    public static TrainableParts BuildTrainable(CoraModelOptions options, LanguageModel? llm, int cfDim)
    {
        var parts = new TrainableParts();
        var method = MethodStrategy.For(options.Method);
        if (method.UsesLlm) method.Build(parts, options, llm ?? throw new ArgumentException($"Method {options.Method} needs an LLM.", nameof(llm)), cfDim);
        parts.Register();
        parts.eval();
        return parts;
    }

    public bool UsesLlm => Method.UsesLlm;

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
    public TokenizedPrompt Tokenize(Interaction row) => _promptCache.GetValue(row, TokenizeUncached);

    // Prompts are re-used across epochs and validations; the cache lives as long as the rows do.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Interaction, TokenizedPrompt> _promptCache = new();

    private TokenizedPrompt TokenizeUncached(Interaction row)
    {
        var items = Items;
        var hist = row.History.Where(items.Contains).Select(items.Title).ToList();
        return Prompts.Tokenize(hist, items.Title(row.ItemId), Llm!.Tokenizer, Llm.Config.MaxPositionEmbeddings);
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

    /// <summary>Logits [B] (fp32) for a batch (graph kept when the trainable parts are in training mode).</summary>
    public Tensor Logits(IReadOnlyList<Interaction> rows, IReadOnlyList<TokenizedPrompt>? prompts = null)
    {
        var users = rows.Select(r => (long)r.UserId).ToArray();
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        if (!UsesLlm) { using var cf = Cf.Score(users, items); return cf.to(ScalarType.Float32); }
        using var scope = torch.NewDisposeScope();
        prompts ??= rows.Select(Tokenize).ToList();
        var (ids, mask) = Llm!.Pad(prompts.Select(p => (IReadOnlyList<int>)p.Ids).ToList());
        var (embeds, hook) = Method.Prepare(Trainable, Cf, Llm.Model.Embed(ids), users, items, prompts);       // [B, T, D]
        var logits = Llm.Model.LastTokenLogits(embeds, mask, hook, new long[] { YesTokenId });                 // [B, 1]
        return logits.squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();                            // [B], fp32 whatever the LLM dtype
    }

    /// <summary>Scores rows in batches without gradients (safe to call from several threads).</summary>
    /// <param name="promptTexts">Ready prompt text per row (used instead of the template), or null.</param>
    public float[] Score(IReadOnlyList<Interaction> rows, int batchSize = CoraDefaults.ScoringBatchSize, CancellationToken ct = default, IReadOnlyList<string>? promptTexts = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be at least 1.");
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

    /// <summary>Writes the model as a zip, atomically (<see cref="ModelArchive"/>).</summary>
    public void Save(string path, bool embedLlm = false) => AtomicFile.Write(path, s => Save(s, embedLlm));

    public void Save(Stream stream, bool embedLlm = false) => ModelArchive.Save(this, stream, embedLlm);

    /// <summary>Loads a model zip (<see cref="ModelArchive.Load(Stream, string, string?, string?, string?)"/>).</summary>
    /// <param name="device">Where to score: cpu, cuda, cuda:N or auto, whatever device the model was trained on.</param>
    /// <param name="llmDtype">The frozen LLM's dtype: auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16 or fp32.</param>
    public static CoraModel Load(string path, string? llmPath = null, string? device = null, string? llmDtype = null)
    {
        FileChecks.RequireRegularFile(path, "Model file");
        using var fs = File.OpenRead(path);
        return ModelArchive.Load(fs, path, llmPath, device, llmDtype);
    }

    public static CoraModel Load(Stream stream, string name, string? llmPath = null, string? device = null, string? llmDtype = null) =>
        ModelArchive.Load(stream, name, llmPath, device, llmDtype);

    public void Dispose()
    {
        Trainable.Dispose();
        Cf.Dispose();
        Llm?.Dispose();
    }
}

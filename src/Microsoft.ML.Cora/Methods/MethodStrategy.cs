using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>
/// The four methods of the paper's comparison as small strategies over shared parts (frozen LLM, frozen CF model, prompt,
/// trainable parts): which trainable parts a method has, which prompt it reads, and how it feeds the CF signal to the LLM.
/// </summary>
public abstract class MethodStrategy
{
    public static MethodStrategy For(CoraMethod method) => method switch
    {
        CoraMethod.Mf => MfMethod.Instance,
        CoraMethod.LlmLora => LlmLoraMethod.Instance,
        CoraMethod.Collm => CollmMethod.Instance,
        CoraMethod.Cora => CoraCollaborativeLora.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "unknown method"),
    };

    /// <summary>False for MF alone (the CF score is the score).</summary>
    public virtual bool UsesLlm => true;

    /// <summary>The prompt options this method reads (CoLLM inserts soft-token slots into the default template).</summary>
    public virtual PromptOptions Prompt(PromptOptions options) => options;

    /// <summary>Creates the method's trainable parts on <paramref name="parts"/> (the LLM and CF model stay frozen).</summary>
    public abstract void Build(TrainableParts parts, CoraModelOptions options, LanguageModel llm, int cfDim);

    /// <summary>The LLM's input embeddings (with soft tokens where the method has them) and the projection hook.</summary>
    /// <param name="embeds">[B, T, D] token embeddings of the prompts</param>
    public abstract (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds,
        IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts);
}

/// <summary>The CF model alone (MF): nothing to train beyond the CF stage, no LLM.</summary>
public sealed class MfMethod : MethodStrategy
{
    public static readonly MfMethod Instance = new();
    public override bool UsesLlm => false;
    public override void Build(TrainableParts parts, CoraModelOptions options, LanguageModel llm, int cfDim) { }
    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts) =>
        throw new InvalidOperationException("MF scores with the CF model alone.");
}

/// <summary>TALLRec: the same prompt, a plain trainable LoRA on the frozen LLM, no CF signal.</summary>
public sealed class LlmLoraMethod : MethodStrategy
{
    public static readonly LlmLoraMethod Instance = new();
    public override void Build(TrainableParts parts, CoraModelOptions o, LanguageModel llm, int cfDim) =>
        parts.lora = new LoraWeights(llm.Model.Sites(o.LoraTargetModules.Select(ProjectionSite.ParseKind)), o.LoraRank, o.LoraAlpha, o.Dropout, o.Seed);
    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts) =>
        (embeds, parts.lora);
}

/// <summary>CoLLM: CF embeddings mapped by an MLP into token embeddings at the prompt's &lt;UserID&gt;/&lt;TargetItemID&gt; slots, plus LoRA.</summary>
public sealed class CollmMethod : MethodStrategy
{
    public static readonly CollmMethod Instance = new();

    public override PromptOptions Prompt(PromptOptions options) =>
        options.Template == PromptOptions.DefaultTemplate ? options with { Template = PromptOptions.CollmTemplate } : options;

    public override void Build(TrainableParts parts, CoraModelOptions o, LanguageModel llm, int cfDim)
    {
        LlmLoraMethod.Instance.Build(parts, o, llm, cfDim);
        parts.cf_token_mapper = new CfTokenMapper(cfDim, llm.Config.HiddenSize);
    }

    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts)
    {
        var u = parts.cf_token_mapper!.call(cf.UserEmbeddings(rows));              // [B, D]
        var it = parts.cf_token_mapper!.call(cf.ItemEmbeddings(items));             // [B, D]
        var rowsIdx = new List<long>(); var posIdx = new List<long>(); var src = new List<Tensor>();
        for (int b = 0; b < prompts.Count; b++)
            foreach (var (pos, slot) in prompts[b].Slots)
            {
                rowsIdx.Add(b); posIdx.Add(pos);
                src.Add((slot == "<UserID>" ? u : it)[b]);
            }
        if (src.Count > 0)
            embeds = embeds.clone().index_put_(torch.stack(src).to(embeds.dtype), torch.tensor(rowsIdx.ToArray(), device: embeds.device), torch.tensor(posIdx.ToArray(), device: embeds.device));
        return (embeds, parts.lora);
    }
}

/// <summary>CoRA: CF embeddings -> collaborative query generator -> per-sample weights A_b -> collaborative weights on the frozen LLM.</summary>
public sealed class CoraCollaborativeLora : MethodStrategy
{
    public static readonly CoraCollaborativeLora Instance = new();

    /// <summary>The generator's input: concat(user embedding, item embedding), [B, 2k].</summary>
    public static Tensor CfToken(ICollaborativeModel cf, IReadOnlyList<Interaction> rows, long[] items) =>
        torch.cat(new[] { cf.UserEmbeddings(rows), cf.ItemEmbeddings(items) }, 1);

    public override void Build(TrainableParts parts, CoraModelOptions o, LanguageModel llm, int cfDim)
    {
        int d = llm.Config.HiddenSize;
        parts.query_generator = new QueryGenerator(o.QueryGenerator, 2 * cfDim, d, o.Rank, o.Seed);
        parts.collaborative_weights = new CollaborativeWeights(llm.Model.Sites(o.TargetModules.Select(ProjectionSite.ParseKind)), d, o.Rank, o.Alpha, o.Dropout);
    }

    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts)
    {
        var a = parts.query_generator!.Forward(CfToken(cf, rows, items));                       // [B, D, r]
        return (embeds, parts.collaborative_weights!.Bind(a));
    }
}

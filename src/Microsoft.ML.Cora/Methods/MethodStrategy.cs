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
internal abstract class MethodStrategy
{
    public static MethodStrategy For(CoraMethod method) => method switch
    {
        CoraMethod.Mf => MfMethod.Instance,
        CoraMethod.LlmLora => LlmLoraMethod.Instance,
        CoraMethod.Collm => CollmMethod.Instance,
        CoraMethod.Cora => CollaborativeLoraMethod.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "unknown method"),
    };

    /// <summary>False for MF alone (the CF score is the score).</summary>
    public virtual bool UsesLlm => true;

    /// <summary>The prompt options this method reads (CoLLM inserts soft-token slots into the default template).</summary>
    public virtual PromptOptions Prompt(PromptOptions options) => options;

    /// <summary>The method's own trainable parts (the LLM and CF model stay frozen).</summary>
    public abstract TrainableParts Build(CoraModelOptions options, LanguageModel llm, int cfDim);

    /// <summary>The LLM's input embeddings (with soft tokens where the method has them) and the projection hook.</summary>
    /// <param name="parts">what <see cref="Build"/> made</param>
    /// <param name="embeds">[B, T, D] token embeddings of the prompts</param>
    public abstract (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds,
        IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts);
}

using Microsoft.ML.Cora.Methods;

namespace Microsoft.ML.Cora.Methods;

/// <summary>The methods of the paper's comparison, one option apart (each is a strategy in <c>Methods/</c>).</summary>
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

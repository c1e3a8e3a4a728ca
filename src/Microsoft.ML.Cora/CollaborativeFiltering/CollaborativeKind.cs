using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>The CF stage under the LLM methods (the paper's CoRA-MF, CoRA-LGCN, CoRA-SAS).</summary>
public enum CollaborativeKind
{
    /// <summary>Matrix factorisation (the default): one embedding per user and item.</summary>
    Mf,
    /// <summary>LightGCN: embeddings propagated over the user-item graph of the training positives.</summary>
    LightGcn,
    /// <summary>SASRec: the user embedding is a causal self-attention encoding of the row's liked history.</summary>
    SasRec,
}

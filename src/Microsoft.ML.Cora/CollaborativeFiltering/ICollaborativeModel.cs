using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// The CF stage behind CoRA: user and item embeddings for ids, and a CF score. Every part of Cora uses CF models through this
/// interface (training, saving, loading, scoring, candidate retrieval); <see cref="MatrixFactorization"/> implements it, and a
/// new CF model (LightGCN, SASRec: the paper's CoRA-LGCN / CoRA-SAS) is one more implementation plus one line in
/// <see cref="CollaborativeModels.Import"/>.
/// </summary>
public interface ICollaborativeModel : IDisposable
{
    /// <summary>"mf", "lightgcn", ... (stored in saved models).</summary>
    string Kind { get; }
    /// <summary>Width k of the user and item embeddings (the CF token concat(user, item) is 2k wide).</summary>
    int EmbeddingDim { get; }
    /// <summary>Whether the user embedding is built from the row's liked history rather than looked up by user id (SASRec: true).
    /// Such a model treats a user id it never saw like any other, so <see cref="Training.TrainingOptions.UserDropout"/> is refused
    /// over it. Default false: the embedding is looked up by user id.</summary>
    bool UserFromHistory => false;
    /// <summary>Whether the user had interactions in training (a warm user).</summary>
    bool KnowsUser(int userId);
    /// <summary>Whether the item had interactions in training (a warm item).</summary>
    bool KnowsItem(int itemId);
    /// <summary>The item ids the model has embeddings for (candidate retrieval scores these).</summary>
    IReadOnlyList<long> ItemIds { get; }
    /// <summary>[B, d] user embeddings of the rows: by user id (MF, LightGCN) or from the row's liked history (SASRec). Cold users
    /// get the zero vector (documented cold-start fallback of each model).</summary>
    Tensor UserEmbeddings(IReadOnlyList<Interaction> rows);
    /// <summary>[B, d]. Unknown ids get the zero vector.</summary>
    Tensor ItemEmbeddings(long[] itemIds);
    /// <summary>CF logits of the rows, [B] (graph kept in training mode).</summary>
    Tensor Score(IReadOnlyList<Interaction> rows);
    /// <summary>CF logits of rows, without gradients.</summary>
    float[] ScoreRows(IReadOnlyList<Interaction> rows);
    /// <summary>Where its weights live.</summary>
    Device Device { get; }
    /// <summary>Moves the weights (CF models stay fp32 unless asked).</summary>
    void MoveTo(Device device, ScalarType dtype);
    /// <summary>Its weights (frozen after training).</summary>
    IEnumerable<Parameter> Weights { get; }
    /// <summary>Everything needed to rebuild it (tensors, including id lists), for the model archive.</summary>
    Dictionary<string, Tensor> ExportState();
}
